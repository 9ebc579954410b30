/*
 * berth-dmz: the last exec of a container process that berth set up without re-executing
 * itself (see dmz.rs). Called as argv = ["berth-dmz", program, arg0, arg1, ...] with the
 * container's environment, it execs program with [arg0, arg1, ...] and that environment.
 * Its own /proc/self/exe is a sealed memfd, so the container's program, whatever it is,
 * never gets a handle on berth's binary (CVE-2019-5736).
 *
 * Run any other way (say, as the interpreter of a "#!/proc/self/exe" script, where argv[0]
 * is that path) it refuses, instead of exec'ing its argv[1] in an endless loop. On failure
 * it writes "berth-dmz: ... errno N" to stderr and exits 127. No libc and no writable
 * data: x86_64 Linux system calls only.
 */
	.globl	_start
	.text
_start:
	mov	8(%rsp), %rsi		/* argv[0] must be "berth-dmz" */
	lea	marker(%rip), %rdi
	mov	$marker_len, %ecx
	repe cmpsb
	jne	refuse
	mov	(%rsp), %rcx		/* argc */
	mov	16(%rsp), %rdi		/* argv[1]: the program's path */
	lea	24(%rsp), %rsi		/* &argv[2]: the program's argv */
	lea	16(%rsp,%rcx,8), %rdx	/* envp follows argv's terminating NULL */
	mov	$59, %eax		/* execve */
	syscall

	neg	%rax			/* errno, as decimal digits below the stack pointer */
	lea	-1(%rsp), %r9
	movb	$10, (%r9)
	mov	$10, %r10d
1:	xor	%edx, %edx
	div	%r10
	add	$48, %dl
	dec	%r9
	mov	%dl, (%r9)
	test	%rax, %rax
	jnz	1b

	mov	$1, %eax		/* write(2, msg, len) */
	mov	$2, %edi
	lea	msg(%rip), %rsi
	mov	$len, %edx
	syscall
	mov	$1, %eax		/* write(2, digits, n) */
	mov	$2, %edi
	mov	%r9, %rsi
	mov	%rsp, %rdx
	sub	%r9, %rdx
	syscall
exit:
	mov	$127, %edi		/* exit(127) */
	mov	$60, %eax
	syscall

refuse:
	mov	$1, %eax		/* write(2, refusal, refusal_len) */
	mov	$2, %edi
	lea	refusal(%rip), %rsi
	mov	$refusal_len, %edx
	syscall
	jmp	exit

	.section .rodata
marker:	.asciz	"berth-dmz"		/* compared with its NUL: no longer name matches */
	.set	marker_len, . - marker
refusal: .ascii	"berth-dmz: only berth runs this program\n"
	.set	refusal_len, . - refusal
msg:	.ascii	"berth-dmz: exec of the container's program failed: errno "
	.set	len, . - msg
	.section .note.GNU-stack,"",@progbits
