// tag_buffer.S -- the 30-second MTE example.
//
// Give a 64-byte buffer one random tag, colour its four 16-byte granules with it (STG),
// read a granule's tag back (LDG), and use the tagged pointer for ordinary loads and stores.
//
//   aarch64mte run asm/tag_buffer.S --tags buf:80
//
// Runs in the default 'snippet' environment: EL1, MMU on with Normal Tagged memory, TBI on,
// tag checks synchronous. Ends by running off the end of the text. Results:
//   x0  = buf with the random tag in bits 59:56 (tag never 0: the IRG mask excludes it)
//   x3  = buf+32 with the tag LDG read from memory (the same tag as x0)
//   x4  = x0's tag, x5 = x3's tag (equal)
//   x6  = 0x1234, loaded back through the tagged pointer
// and the tags of buf are [t, t, t, t] followed by the untouched granule (tag 0).

    .text
    .globl _start
_start:
    adr     x0, buf             // plain pointer: logical tag 0
    mov     x9, #1              // IRG exclusion mask: bit n excludes tag n; exclude tag 0
    irg     x0, x0, x9          // x0 = buf with a random tag inserted in bits 59:56

    mov     x1, x0              // x1 walks the buffer one granule at a time
    add     x2, x0, #64         // end of the buffer (same tag; compared as a whole value)
1:  stg     x1, [x1], #16       // allocation tag of granule [x1] = x1's logical tag; x1 += 16
    cmp     x1, x2
    b.ne    1b

    adr     x3, buf + 32        // untagged pointer to the third granule
    ldg     x3, [x3]            // x3 = x3 with the granule's allocation tag inserted

    ubfx    x4, x0, #56, #4     // the logical tags, side by side
    ubfx    x5, x3, #56, #4

    movz    x7, #0x1234
    str     x7, [x0, #48]       // checked store: pointer tag == allocation tag, no fault
    ldr     x6, [x3, #16]       // checked load of the same bytes through the LDG'd pointer

    .bss
    .balign 16
    .globl buf
buf:    .skip 64                // the buffer
after:  .skip 16                // the next granule, never tagged
