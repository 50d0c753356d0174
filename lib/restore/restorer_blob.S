/* The freestanding restorer, built as a flat blob, embedded in libckpt.a. */
	.section .rodata
	.balign 64
	.globl rst_blob
	.type rst_blob, @object
rst_blob:
	.incbin "lib/restore/restorer/restorer.bin"
	.globl rst_blob_end
rst_blob_end:
	.section .note.GNU-stack,"",@progbits
