// ttfuse HOST stand-in for the SFPI headers (sfpi.h).
//
// The real SFPI headers ship with the RISC-V SFPI compiler, which is not available on this
// machine (tt-metal downloads it; there is no network and no hardware here). The LLK headers
// that every compute kernel includes use SFPI vector types in their own SFPU helpers, so without
// some sfpi.h no compute kernel can even be parsed by the host syntax check.
//
// This file is deliberately PERMISSIVE: every SFPI vector type accepts any operand and every SFPI
// function accepts any arguments. It exists so that the LLK internals parse; it does not check
// SFPI usage. What the host check DOES type-check strictly is everything a kernel calls from the
// real compute API headers shipped in the wheel (cb_*, tile_regs_*, copy_tile, pack_tile,
// *_init, matmul, reduce, binary ops ...), the kernel's own code and its compile-time args.
// A kernel that itself writes SFPI code gets only a parse check of that part.
// Never used to build anything that runs. Installed by micro_ops/mock_device.py.
#pragma once

#include <cstdint>
#include <type_traits>

#define sfpi_inline inline __attribute__((always_inline))

namespace sfpi {

// The one value type. Vector types derive from it so overloads on them stay distinct.
struct __hv {
    constexpr __hv() = default;
    template <class T>
    constexpr __hv(const T&) {}
    template <class T>
    constexpr __hv& operator=(const T&) { return *this; }
    template <class T>
    constexpr operator T() const { return T{}; }
    template <class T>
    constexpr __hv operator[](const T&) const { return {}; }
    constexpr __hv& operator++() { return *this; }
    constexpr __hv operator++(int) { return *this; }
    constexpr __hv& operator--() { return *this; }
    constexpr __hv operator--(int) { return *this; }
    // members the LLK headers reach for: raw register handle, address-mode view, liveness hint
    constexpr __hv get() const { return {}; }
    template <class T>
    constexpr __hv mode(const T&) const { return {}; }
    template <auto M>
    constexpr __hv mode() const { return {}; }
    constexpr void in_use() const {}
};

template <class T>
inline constexpr bool __is_hv = std::is_base_of_v<__hv, std::decay_t<T>>;

// result type of an operation: the first SFPI operand's type
template <class A, class B>
using __res = std::conditional_t<__is_hv<A>, std::decay_t<A>, std::conditional_t<__is_hv<B>, std::decay_t<B>, __hv>>;

#define __SFPI_HOST_TYPE(name)              \
    struct name : __hv {                    \
        constexpr name() = default;         \
        template <class T0, class... T>     \
        constexpr name(const T0&, const T&...) {} \
        using __hv::operator=;              \
    }

__SFPI_HOST_TYPE(vFloat);
__SFPI_HOST_TYPE(vInt);
__SFPI_HOST_TYPE(vUInt);
__SFPI_HOST_TYPE(vBool);
__SFPI_HOST_TYPE(vMag);
__SFPI_HOST_TYPE(vSMag);
__SFPI_HOST_TYPE(vSMag8);
__SFPI_HOST_TYPE(vSMag16);
__SFPI_HOST_TYPE(vUInt8);
__SFPI_HOST_TYPE(vUInt16);
__SFPI_HOST_TYPE(vFloat16a);
__SFPI_HOST_TYPE(vFloat16b);
__SFPI_HOST_TYPE(vLut16ii);
__SFPI_HOST_TYPE(vLut16ss);
__SFPI_HOST_TYPE(vLut8si);
__SFPI_HOST_TYPE(sFloat16a);
__SFPI_HOST_TYPE(sFloat16b);
__SFPI_HOST_TYPE(sLut16si);
__SFPI_HOST_TYPE(sLut8si);
__SFPI_HOST_TYPE(__vDReg);
__SFPI_HOST_TYPE(__vLReg);
__SFPI_HOST_TYPE(__vConst);
#undef __SFPI_HOST_TYPE

#define __SFPI_BINOP(op)                                                              \
    template <class A, class B, std::enable_if_t<__is_hv<A> || __is_hv<B>, int> = 0> \
    constexpr __res<A, B> operator op(const A&, const B&) {                           \
        return {};                                                                    \
    }
__SFPI_BINOP(+)
__SFPI_BINOP(-)
__SFPI_BINOP(*)
__SFPI_BINOP(/)
__SFPI_BINOP(%)
__SFPI_BINOP(&)
__SFPI_BINOP(|)
__SFPI_BINOP(^)
__SFPI_BINOP(<<)
__SFPI_BINOP(>>)
__SFPI_BINOP(&&)
__SFPI_BINOP(||)
__SFPI_BINOP(==)
__SFPI_BINOP(!=)
__SFPI_BINOP(<)
__SFPI_BINOP(>)
__SFPI_BINOP(<=)
__SFPI_BINOP(>=)
#undef __SFPI_BINOP

#define __SFPI_ASSIGNOP(op)                                              \
    template <class A, class B, std::enable_if_t<__is_hv<A>, int> = 0> \
    constexpr A& operator op(A& a, const B&) {                          \
        return a;                                                       \
    }
__SFPI_ASSIGNOP(+=)
__SFPI_ASSIGNOP(-=)
__SFPI_ASSIGNOP(*=)
__SFPI_ASSIGNOP(/=)
__SFPI_ASSIGNOP(%=)
__SFPI_ASSIGNOP(&=)
__SFPI_ASSIGNOP(|=)
__SFPI_ASSIGNOP(^=)
__SFPI_ASSIGNOP(<<=)
__SFPI_ASSIGNOP(>>=)
#undef __SFPI_ASSIGNOP

#define __SFPI_UNOP(op)                                        \
    template <class A, std::enable_if_t<__is_hv<A>, int> = 0> \
    constexpr std::decay_t<A> operator op(const A&) {          \
        return {};                                             \
    }
__SFPI_UNOP(-)
__SFPI_UNOP(+)
__SFPI_UNOP(~)
__SFPI_UNOP(!)
#undef __SFPI_UNOP

template <class T>
constexpr bool __cond(const T&) {
    return true;
}

// Functions: any arguments; the result has the first SFPI argument's type.
template <class... A>
struct __first_hv {
    using type = __hv;
};
template <class A0, class... A>
struct __first_hv<A0, A...> {
    using type = std::conditional_t<__is_hv<A0>, std::decay_t<A0>, typename __first_hv<A...>::type>;
};

#define __SFPI_FN(name)                                             \
    template <class... A>                                           \
    constexpr typename __first_hv<A...>::type name(const A&...) {   \
        return {};                                                  \
    }
__SFPI_FN(abs)
__SFPI_FN(addexp)
__SFPI_FN(approx_exp)
__SFPI_FN(approx_recip)
__SFPI_FN(approx_sqrt)
__SFPI_FN(clamp)
__SFPI_FN(copyman)
__SFPI_FN(copysgn)
__SFPI_FN(exexp)
__SFPI_FN(exexp_nodebias)
__SFPI_FN(exman)
__SFPI_FN(exman8)
__SFPI_FN(exman9)
__SFPI_FN(float_to_fp16a)
__SFPI_FN(float_to_fp16b)
__SFPI_FN(float_to_int16)
__SFPI_FN(float_to_int8)
__SFPI_FN(float_to_uint16)
__SFPI_FN(float_to_uint8)
__SFPI_FN(fractional_mul)
__SFPI_FN(int32_to_float)
__SFPI_FN(int32_to_int8)
__SFPI_FN(int32_to_uint8)
__SFPI_FN(is_finite)
__SFPI_FN(is_inf)
__SFPI_FN(is_nan)
__SFPI_FN(is_neg)
__SFPI_FN(is_pos)
__SFPI_FN(lz)
__SFPI_FN(lz_nosgn)
__SFPI_FN(lut)
__SFPI_FN(lut_sign)
__SFPI_FN(lut2)
__SFPI_FN(lut2_sign)
__SFPI_FN(max)
__SFPI_FN(min)
__SFPI_FN(nearby)
__SFPI_FN(rectified_linear_unit)
__SFPI_FN(reduce_max)
__SFPI_FN(reduce_sum)
__SFPI_FN(round)
__SFPI_FN(s2vFloat16)
__SFPI_FN(s2vFloat16a)
__SFPI_FN(s2vFloat16b)
__SFPI_FN(setexp)
__SFPI_FN(setman)
__SFPI_FN(setsgn)
__SFPI_FN(setsgn2)
__SFPI_FN(shft)
__SFPI_FN(subvec_shflror1)
__SFPI_FN(subvec_shflshr1)
__SFPI_FN(subvec_transp)
__SFPI_FN(symmetric_clamp)
__SFPI_FN(vec_swap)
#undef __SFPI_FN

// min_max gives both results at once (LLK code unpacks it: `auto [lo, hi] = sfpi::min_max(a, b)`)
template <class T>
struct __hv_pair {
    T first, second;
};
template <class... A>
constexpr __hv_pair<typename __first_hv<A...>::type> min_max(const A&...) { return {}; }
template <class... A>
constexpr __hv_pair<typename __first_hv<A...>::type> vec_min_max(const A&...) { return {}; }

// Conversions with an explicit target type: sfpi::as<vInt>(x), sfpi::convert<vFloat>(x, mode).
template <class T, class... A>
constexpr T as(const A&...) {
    return T{};
}
template <class T, class... A>
constexpr T reinterpret(const A&...) {
    return T{};
}
template <class T, class... A>
constexpr T convert(const A&...) {
    return T{};
}

template <class... A>
constexpr void lut_init(const A&...) {}
// declares high register pressure in a scope: `sfpi::lreg_pressure _;`
struct lreg_pressure {};

enum class RoundMode { Nearest, NearestAway, NearestEven, NearestStochastic, Stochastic, Truncate };
enum class DataLayout { Default, None, F16a, F16b, F32, FSrcB, I32, M32, SM8, SM16, SM32, U8, U16, U32, ROW_MAJOR, TILE };
enum class ExponentMode { Biased, Unbiased, Debiased };
enum class ShiftMode { Arithmetic, Logical };
enum class LutSign { Retain, Update };
enum class LutMode { Fp16x6_HWM3, Fp8x3 };
enum class MantissaMode { ImplicitOne, NoImplicitOne };
enum class FractionalHalf { Low, High };
enum class UnpackSrcS { None, Default };
enum class LRegs { LReg0, LReg1, LReg2, LReg3, LReg4, LReg5, LReg6, LReg7, LRegCount };

// Registers and programmable constants.
inline __vDReg dst_reg;
inline __vLReg l_reg;
inline vFloat vConst0;
inline vFloat vConst1;
inline vFloat vConstNeg1;
inline vFloat vConst0p8373;
inline vFloat vConstFloatPrgm0;
inline vFloat vConstFloatPrgm1;
inline vFloat vConstFloatPrgm2;
inline vInt vConstIntPrgm0;
inline vInt vConstIntPrgm1;
inline vInt vConstIntPrgm2;
inline vInt vConstTileId;

// Instruction modifier constants (values are irrelevant for a parse check).
constexpr int SFP_DESTREG_STRIDE = 2;
constexpr int SFP_SRCSREG_STRIDE = 2;
constexpr int CREG_IDX_0P837300003 = 8;
constexpr int CREG_IDX_LUT_SLOPES = 11;
constexpr int CREG_IDX_TILEID = 15;
constexpr int SFPABS_MOD1_FLOAT = 1;
constexpr int SFPABS_MOD1_INT = 0;
constexpr int SFPARECIP_MOD1_RECIP = 0;
constexpr int SFPCAST_MOD1_INT32_TO_FP32_RNE = 0;
constexpr int SFPCAST_MOD1_SM32_TO_FP32_RNE = 0;
constexpr int SFPCONFIG_SRC_RAND = 0;
constexpr int SFPENCC_IMM12_BOTH = 0;
constexpr int SFPENCC_MOD1_EI_RI = 0;
constexpr int SFPENCC_MOD1_EU_R1 = 0;
constexpr int SFPEXEXP_MOD1_SET_CC_COMP_EXP = 0;
constexpr int SFPEXEXP_MOD1_SET_CC_SGN_EXP = 0;
constexpr int SFPEXMAN_MOD1_PAD9 = 0;
constexpr int SFPIADD_MOD1_ARG_2SCOMP_LREG_DST = 0;
constexpr int SFPIADD_MOD1_ARG_IMM = 0;
constexpr int SFPIADD_MOD1_ARG_LREG_DST = 0;
constexpr int SFPIADD_MOD1_CC_GTE0 = 0;
constexpr int SFPIADD_MOD1_CC_LT0 = 0;
constexpr int SFPIADD_MOD1_CC_NONE = 0;
constexpr int SFPLOADI_MOD0_FLOATA = 0;
constexpr int SFPLOADI_MOD0_FLOATB = 0;
constexpr int SFPLOADI_MOD0_LOWER = 0;
constexpr int SFPLOADI_MOD0_SHORT = 0;
constexpr int SFPLOADI_MOD0_UPPER = 0;
constexpr int SFPLOADI_MOD0_USHORT = 0;
constexpr int SFPLOAD_MOD0_FMT_FP16B = 0;
constexpr int SFPLOAD_MOD0_FMT_SRCB = 0;
constexpr int SFPLZ_MOD1_CC_NE0 = 0;
constexpr int SFPLZ_MOD1_CC_NONE = 0;
constexpr int SFPMAD_MOD1_OFFSET_NONE = 0;
constexpr int SFPMOV_MOD1_CONFIG = 0;
constexpr int SFPMUL24_MOD1_LOWER = 0;
constexpr int SFPMUL24_MOD1_UPPER = 0;
constexpr int SFPSETCC_MOD1_LREG_EQ0 = 0;
constexpr int SFPSETCC_MOD1_LREG_GTE0 = 0;
constexpr int SFPSETCC_MOD1_LREG_LT0 = 0;
constexpr int SFPSETCC_MOD1_LREG_NE0 = 0;
constexpr int SFPSHFT2_MOD1_SHFT_IMM = 0;
constexpr int SFPSHFT2_MOD1_SHFT_LREG = 0;
constexpr int SFPSHFT2_MOD1_SUBVEC_SHFLROR1 = 0;
constexpr int SFPSHFT2_MOD1_SUBVEC_SHFLSHR1 = 0;
constexpr int SFPSTOCHRND_MOD1_FP32_TO_FP16B = 0;
constexpr int SFPSTOCHRND_MOD1_FP32_TO_INT16 = 0;
constexpr int SFPSTOCHRND_MOD1_FP32_TO_INT8 = 0;
constexpr int SFPSTOCHRND_MOD1_FP32_TO_UINT16 = 0;
constexpr int SFPSTOCHRND_MOD1_FP32_TO_UINT8 = 0;
constexpr int SFPSTOCHRND_RND_EVEN = 0;
constexpr int SFPSTORE_ADDR_MODE_NOINC = 0;
constexpr int SFPSTORE_MOD0_FMT_FP16B = 0;
constexpr int SFPSTORE_MOD0_FMT_SRCB = 0;
constexpr int SFPSWAP_MOD1_SWAP = 0;
constexpr int SFPSWAP_MOD1_VEC_MIN_MAX = 0;

}  // namespace sfpi

// Predicated blocks. The real macros drive the SFPU condition-code stack; here they only keep
// the braces and evaluate the condition expression so it is type-checked as an expression.
#define v_if(x) { if (::sfpi::__cond(x)) {
#define v_elseif(x) } else if (::sfpi::__cond(x)) {
#define v_else } else {
#define v_endif } }
#define v_block { {
#define v_endblock } }
#define v_and(x) (void)::sfpi::__cond(x)

// Compiler builtins the LLK headers call directly.
template <class... A>
constexpr std::uint32_t __builtin_rvtt_sfpmad(const A&...) { return 0; }
template <class... A>
constexpr std::uint32_t __builtin_rvtt_sfpgt(const A&...) { return 0; }
template <class... A>
constexpr void __builtin_rvtt_ttreplay(const A&...) {}
