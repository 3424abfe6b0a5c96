/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * guest.S - the guest program of memconv-vmm: a command interpreter.
 *
 * Runs in 32-bit protected mode without paging (flat CS/DS set up by the
 * VMM with KVM_SET_SREGS), from the code slot at CODE_GPA. It is position
 * independent (only relative jumps and calls, no data), so the VMM copies the bytes
 * between vmm_guest_start and vmm_guest_end anywhere; it lives in .rodata
 * of the VMM and never runs on the host.
 *
 * Loop: `in PORT_CMD` gives a command; its arguments are in the mailbox at
 * MB_ARG(i)(%esp) (the bottom of this vCPU's stack page, see vmm.h) and it
 * leaves exactly two result words at MB_RES(0/1)(%esp) before asking for the
 * next command. Addresses are guest-physical RAM
 * addresses; view 1 (shared) adds SHARED_ALIAS, as a TDX guest sets the
 * shared bit. Before touching memory the guest announces [addr, addr+len)
 * with `in PORT_ACCESS` (ebx, ecx); a non-zero answer means the VMM could
 * not make the access legal and the command reports it instead of
 * accessing. CONVERT loads the KVM_HC_MAP_GPA_RANGE registers (eax = 12,
 * ebx = gpa, ecx = pages, edx = attributes) and does `in PORT_HC`, which
 * returns hypercall.ret in eax, like RAX after vmmcall. The guest never
 * uses its stack but for one call/ret, so esp is the same at every
 * command.
 *
 * Lengths are multiples of 4; patterns are 32-bit words.
 */
#include "vmm.h"

        .section .rodata.vmm_guest, "a"
        .code32
        .globl vmm_guest_start
        .globl vmm_guest_end
        .p2align 4
vmm_guest_start:
        cld
cmd_loop:
        in      $PORT_CMD, %eax
        cmp     $CMD_FILL, %eax
        je      do_fill
        cmp     $CMD_CHECK, %eax
        je      do_check
        cmp     $CMD_CONVERT, %eax
        je      do_convert
        cmp     $CMD_TOUCH, %eax
        je      do_touch
        cmp     $CMD_DONE, %eax
        je      do_done
        cmp     $CMD_READLOOP, %eax
        je      do_readloop
        mov     $0xbad, %eax
        mov     %eax, MB_RES(0)(%esp)
        mov     %eax, MB_RES(1)(%esp)
        jmp     cmd_loop

/*
 * FILL/CHECK: args gpa, len, pattern, view, step. step 4 is dense (every
 * word, rep stos/scas); a larger step looks at one word every step bytes
 * (the VMM uses 1024 for page-aligned ranges: 4 words per page). This
 * machine's KVM emulates these instructions, about 0.17 us per word.
 * Registers: edi = address, ecx = len, esi = pattern, edx = step,
 * ebp = start.
 */
fill_check_args:                        /* called: esp is 4 lower */
        mov     MB_ARG(0)+4(%esp), %edi
        mov     MB_ARG(1)+4(%esp), %ecx
        mov     MB_ARG(2)+4(%esp), %esi
        mov     MB_ARG(4)+4(%esp), %edx
        mov     MB_ARG(3)+4(%esp), %eax
        test    $VIEW_SHARED, %eax
        jz      1f
        add     $SHARED_ALIAS, %edi
1:      mov     %edi, %ebx
        mov     %edi, %ebp
        test    $VIEW_RAW, %eax
        mov     $0, %eax
        jnz     2f                      /* raw: no announcement, KVM alone decides */
        in      $PORT_ACCESS, %eax
2:      ret                             /* the only stack use: esp stays fixed between commands */

do_fill:
        call    fill_check_args
        test    %eax, %eax
        jnz     refused
        cmp     $4, %edx
        jne     2f
        mov     %esi, %eax
        shr     $2, %ecx
        rep stosl
        jmp     3f
2:      mov     %esi, (%edi)
        add     %edx, %edi
        sub     %edx, %ecx
        ja      2b
3:      xor     %eax, %eax
        mov     %eax, MB_RES(0)(%esp)
        mov     %eax, MB_RES(1)(%esp)
        jmp     cmd_loop

do_check:
        call    fill_check_args
        test    %eax, %eax
        jnz     refused
        cmp     $4, %edx
        jne     5f
        mov     %esi, %eax
        shr     $2, %ecx
        jz      2f
        repe scasl
        jne     3f
2:      mov     $CHECK_OK, %eax
        mov     %eax, MB_RES(0)(%esp)
        xor     %eax, %eax
        mov     %eax, MB_RES(1)(%esp)
        jmp     cmd_loop
3:      sub     $4, %edi                /* back to the mismatching word */
4:      mov     %edi, %eax
        sub     %ebp, %eax              /* offset of the first mismatch */
        mov     %eax, MB_RES(0)(%esp)
        mov     (%edi), %eax            /* what was found there */
        mov     %eax, MB_RES(1)(%esp)
        jmp     cmd_loop
5:      cmp     %esi, (%edi)
        jne     4b
        add     %edx, %edi
        sub     %edx, %ecx
        ja      5b
        jmp     2b

do_convert:
        mov     MB_ARG(0)(%esp), %eax
        mov     %eax, %ebx              /* a0: gpa */
        mov     MB_ARG(1)(%esp), %eax
        mov     %eax, %ecx              /* a1: number of 4 KiB pages */
        mov     MB_ARG(2)(%esp), %eax
        mov     %eax, %edx              /* a2: attributes */
        mov     MB_ARG(3)(%esp), %eax
        test    %eax, %eax
        mov     $12, %eax               /* KVM_HC_MAP_GPA_RANGE */
        jnz     1f
        in      $PORT_HC, %eax          /* the stand-in for vmmcall */
        jmp     2f
1:      vmmcall                         /* the real one: KVM_EXIT_HYPERCALL */
2:      mov     %eax, MB_RES(0)(%esp)
        xor     %eax, %eax
        mov     %eax, MB_RES(1)(%esp)
        jmp     cmd_loop

do_touch:
        mov     MB_ARG(0)(%esp), %eax
        mov     %eax, %edi
        mov     MB_ARG(1)(%esp), %eax
        mov     %eax, %ecx
        mov     MB_ARG(2)(%esp), %eax
        test    $VIEW_SHARED, %eax
        jz      1f
        add     $SHARED_ALIAS, %edi
1:      mov     %edi, %ebx
        test    $VIEW_RAW, %eax
        mov     $0, %eax
        jnz     3f
        in      $PORT_ACCESS, %eax
3:      test    %eax, %eax
        jnz     refused
        xor     %edx, %edx
2:      xor     (%edi), %edx            /* one read per 4 KiB page */
        add     $VMM_PAGE_SIZE, %edi
        sub     $VMM_PAGE_SIZE, %ecx
        ja      2b
        xor     %eax, %eax
        mov     %eax, MB_RES(0)(%esp)
        mov     %edx, %eax
        mov     %eax, MB_RES(1)(%esp)
        jmp     cmd_loop

/*
 * READLOOP: args gpa, len, passes, view. Reads one word per 4 KiB page of
 * the range, passes times, with no announcement: on a VM with private
 * memory KVM alone decides, and a conversion racing these reads makes KVM
 * exit with KVM_EXIT_MEMORY_FAULT. Results: 0, xor of the words read.
 */
do_readloop:
        mov     MB_ARG(0)(%esp), %ebx
        mov     MB_ARG(3)(%esp), %eax
        test    $VIEW_SHARED, %eax
        jz      1f
        add     $SHARED_ALIAS, %ebx
1:      mov     MB_ARG(2)(%esp), %esi   /* passes */
        xor     %edx, %edx
2:      mov     %ebx, %edi
        mov     MB_ARG(1)(%esp), %ecx
3:      xor     (%edi), %edx
        add     $VMM_PAGE_SIZE, %edi
        sub     $VMM_PAGE_SIZE, %ecx
        ja      3b
        dec     %esi
        jnz     2b
        xor     %eax, %eax
        mov     %eax, MB_RES(0)(%esp)
        mov     %edx, MB_RES(1)(%esp)
        jmp     cmd_loop

refused:
        mov     %eax, MB_RES(0)(%esp)      /* the VMM's non-zero refusal code */
        xor     %eax, %eax
        mov     %eax, MB_RES(1)(%esp)
        jmp     cmd_loop

do_done:
        hlt
        jmp     do_done
vmm_guest_end:

        .section .note.GNU-stack, "", @progbits
