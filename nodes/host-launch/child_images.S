/*
 * The child VM's flat image and device tree, embedded at build time from the
 * build's output directory (nodes/build.py builds rm-child first).
 *
 * rm_child_image[_end]: images/rm-child.bin, to load at the parcel's start.
 * rm_child_dtb[_end]:   images/rm-child.dtb, with the free space dtc -p left.
 */
    .section .rodata.rm_child, "a"

    .balign 16
    .global rm_child_image
rm_child_image:
    .incbin "rm-child.bin"
    .global rm_child_image_end
rm_child_image_end:

    .balign 16
    .global rm_child_dtb
rm_child_dtb:
    .incbin "rm-child.dtb"
    .global rm_child_dtb_end
rm_child_dtb_end:
