//go:build amd64 && !purego

#include "textflag.h"

// Both sum x·0 over the slice in four AVX accumulators: every lane stays 0
// unless it met a NaN or ±Inf, which makes it NaN; a NaN lane compares
// unequal to itself.

// func has32(v []float32) bool
TEXT ·has32(SB), NOSPLIT, $0-25
	MOVQ   v_base+0(FP), SI
	MOVQ   v_len+8(FP), CX
	SHRQ   $5, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	TESTQ  CX, CX
	JZ     done32

loop32:
	VMULPS (SI), Y4, Y5
	VMULPS 32(SI), Y4, Y6
	VMULPS 64(SI), Y4, Y7
	VMULPS 96(SI), Y4, Y8
	VADDPS Y5, Y0, Y0
	VADDPS Y6, Y1, Y1
	VADDPS Y7, Y2, Y2
	VADDPS Y8, Y3, Y3
	ADDQ   $128, SI
	DECQ   CX
	JNZ    loop32

done32:
	VADDPS    Y1, Y0, Y0
	VADDPS    Y3, Y2, Y2
	VADDPS    Y2, Y0, Y0
	VCMPPS    $0, Y0, Y0, Y1 // equal (ordered): all ones unless NaN
	VMOVMSKPS Y1, AX
	CMPL      AX, $0xff
	SETNE     ret+24(FP)
	VZEROUPPER
	RET

// func has64(v []float64) bool
TEXT ·has64(SB), NOSPLIT, $0-25
	MOVQ   v_base+0(FP), SI
	MOVQ   v_len+8(FP), CX
	SHRQ   $4, CX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	TESTQ  CX, CX
	JZ     done64

loop64:
	VMULPD (SI), Y4, Y5
	VMULPD 32(SI), Y4, Y6
	VMULPD 64(SI), Y4, Y7
	VMULPD 96(SI), Y4, Y8
	VADDPD Y5, Y0, Y0
	VADDPD Y6, Y1, Y1
	VADDPD Y7, Y2, Y2
	VADDPD Y8, Y3, Y3
	ADDQ   $128, SI
	DECQ   CX
	JNZ    loop64

done64:
	VADDPD    Y1, Y0, Y0
	VADDPD    Y3, Y2, Y2
	VADDPD    Y2, Y0, Y0
	VCMPPD    $0, Y0, Y0, Y1
	VMOVMSKPD Y1, AX
	CMPL      AX, $0xf
	SETNE     ret+24(FP)
	VZEROUPPER
	RET
