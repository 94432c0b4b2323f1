// PSCI SYSTEM_OFF by HVC (SMC Calling Convention: function id in W0): KVM ends the run with
// KVM_EXIT_SYSTEM_EVENT (shutdown). Before it, PSCI_VERSION returns 1.1 in x0 (saved in x10).
    .text
_start:
    ldr     x0, =0x84000000
    hvc     #0
    mov     x10, x0
    ldr     x0, =0x84000008
    hvc     #0
    mov     x11, #1                     // not reached
    ret
