// One side of the tag-initialisation race: the first access of this vCPU to a page of a
// shared memfd is a run of STGs, so that the stage-2 fault that maps the page (and
// initialises its tags) comes right before the guest's own tag stores.
//
// In: x0 = the page (IPA = VA, the snippet profile's identity map), x1 = first granule,
//     x2 = number of granules (at least 1), x3 = the tag to store.
// Out: the granules [x1, x1 + x2) of the page hold tag x3 -- unless a later tag
//     initialisation by another path wipes them.
    .text
_start:
    add     x4, x0, x1, lsl #4          // the first granule
    bfi     x4, x3, #56, #4             // its pointer tag (bits 59:56; TBI0 is set)
1:  stg     x4, [x4], #16               // STG: allocation tag := the pointer's tag
    subs    x2, x2, #1
    b.ne    1b
    ret
