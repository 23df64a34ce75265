//! Numbers as Perl 5 computes them, so that every figure of the status loop comes out as
//! qemu-server's.
//!
//! A Perl scalar holding a number is an integer (IV, or UV for values above `i64::MAX`) or
//! a double (NV). Which one an operation yields decides the digits that get printed, so
//! [`PerlNum`] keeps the distinction and its operations follow perl 5.36 on a 64-bit build
//! with double NVs (`PERL_PRESERVE_IVUV` on, `NV_PRESERVES_UV` off, hence
//! `PERL_TRY_UV_DIVIDE` on):
//!
//! - an NV takes part as an integer only if its value is integral and below 2^53 in
//!   magnitude (`SvIV_please_nomg`, `NV_PRESERVES_UV_BITS` = 53); an NV of 2^53 or more is
//!   always a double, even when integral;
//! - `a + b`, `a - b`, `a * b` (`pp_add`, `pp_subtract`, `pp_multiply`) with two integers
//!   give the exact integer when it fits an IV or a UV (`i64::MIN ..= u64::MAX`). A sum or
//!   difference below `i64::MIN` whose magnitude still fits a UV is that exact value rounded
//!   to a double (`SETn( -(NV)result )`). Otherwise, or with a double operand, the result is
//!   the double operation on `(double)a`, `(double)b`;
//! - `undef` in arithmetic is 0 but never an integer operand, so it turns the result into a
//!   double (`9007199254740993 - undef` is `9.00719925474099e+15`);
//! - `a / b` (`pp_divide`) gives the exact integer quotient only when both are integers,
//!   `|a| >= |b|`, `|a| > 2^53` and the division leaves no remainder; otherwise the double
//!   division. Dividing by zero dies (here: `None`);
//! - `int(x)` (`pp_int`) keeps an integer; a double is truncated toward zero and becomes an
//!   integer when it is in `(-2^63, 2^64)`, else stays a double (`floor` / `ceil`);
//! - `<`, `==` and friends (`do_ncmp`) compare exactly when both are integers, else as
//!   doubles;
//! - interpolating a number in a string prints an integer in decimal and a double with
//!   `%.15g` (`0` for either zero); `sprintf "%d"` takes `SvIV`, which wraps a UV into
//!   the negative and clamps a double. (Perl prints a double that once served as an
//!   integer operand, so below 2^53, like an integer; no figure the loop prints is such a
//!   double: the printed ones come from `int()`, which gives integers below 2^64.)
//!
//! Conversions to double round to nearest, ties to even (as the C casts on x86-64).
//! Every rule above was checked against `/usr/bin/perl` (5.36); `tests/progress_perl.rs`
//! keeps checking the formulas built from them.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, Mul, Sub};

/// Values with a magnitude of at most this are exact doubles: `1 << NV_PRESERVES_UV_BITS`.
const NV_EXACT: u128 = 1 << 53;
/// 2^63 and 2^64 as doubles, the bounds of `pp_int`'s and `SvIV`'s integer results.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;
const TWO_64: f64 = 18_446_744_073_709_551_616.0;

/// A Perl number: an integer (IV or UV) or a double (NV).
///
/// `==` on this type compares representations (same kind, same value, doubles bit for bit),
/// not Perl's `==`; use [`PerlNum::num_cmp`] for the latter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PerlNum(Repr);

#[derive(Debug, Clone, Copy)]
enum Repr {
    /// An IV or UV: always within `i64::MIN ..= u64::MAX`.
    Int(i128),
    /// An NV.
    Nv(f64),
    /// `undef`.
    Undef,
}

impl PartialEq for Repr {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Repr::Int(a), Repr::Int(b)) => a == b,
            (Repr::Nv(a), Repr::Nv(b)) => a.to_bits() == b.to_bits(),
            (Repr::Undef, Repr::Undef) => true,
            _ => false,
        }
    }
}

/// Bitwise equality of doubles is an equivalence.
impl Eq for Repr {}

impl PerlNum {
    /// The integer `0`.
    pub(crate) const ZERO: PerlNum = PerlNum::iv(0);

    /// `undef`, e.g. a `reused` that the reply did not have.
    pub(crate) const UNDEF: PerlNum = PerlNum(Repr::Undef);

    /// An integer constant, as Perl compiles a literal.
    pub(crate) const fn iv(value: i64) -> Self {
        PerlNum(Repr::Int(value as i128))
    }

    /// A double.
    pub(crate) const fn nv(value: f64) -> Self {
        PerlNum(Repr::Nv(value))
    }

    /// The exact integer if it fits an IV or a UV.
    fn exact(value: i128) -> Option<Self> {
        (i128::from(i64::MIN)..=i128::from(u64::MAX))
            .contains(&value)
            .then_some(PerlNum(Repr::Int(value)))
    }

    /// The value as an integer operand, if Perl treats it as one (`SvIV_please_nomg`): an
    /// integer, or an integral double below 2^53 in magnitude.
    pub(crate) fn as_integer(self) -> Option<i128> {
        match self.0 {
            Repr::Int(value) => Some(value),
            Repr::Nv(value) if value.fract() == 0.0 && value.abs() < NV_EXACT as f64 => {
                Some(value as i128)
            }
            Repr::Nv(_) | Repr::Undef => None,
        }
    }

    /// The value as a double (`SvNV`): an integer rounded to the nearest double, `undef` 0.
    pub(crate) fn to_nv(self) -> f64 {
        match self.0 {
            Repr::Int(value) => value as f64,
            Repr::Nv(value) => value,
            Repr::Undef => 0.0,
        }
    }

    /// Perl truthiness of a number: false only for zero and `undef`.
    pub(crate) fn is_true(self) -> bool {
        match self.0 {
            Repr::Int(value) => value != 0,
            Repr::Nv(value) => value != 0.0,
            Repr::Undef => false,
        }
    }

    /// `int($x)`; `int(undef)` is 0.
    pub(crate) fn int(self) -> Self {
        if let Some(value) = self.as_integer() {
            return PerlNum(Repr::Int(value));
        }
        if self.0 == Repr::Undef {
            return PerlNum::ZERO;
        }
        let value = self.to_nv();
        if value.is_nan() || value.is_infinite() {
            self
        } else if value >= 0.0 {
            if value < TWO_64 {
                PerlNum(Repr::Int(value as i128))
            } else {
                PerlNum::nv(value.floor())
            }
        } else if value > -TWO_63 {
            PerlNum(Repr::Int(value as i128))
        } else {
            PerlNum::nv(value.ceil())
        }
    }

    /// `$a / $b`, or `None` where Perl dies with `Illegal division by zero`.
    pub(crate) fn checked_div(self, rhs: Self) -> Option<Self> {
        if let (Some(left), Some(right)) = (self.as_integer(), rhs.as_integer()) {
            let (left_abs, right_abs) = (left.unsigned_abs(), right.unsigned_abs());
            if right_abs == 0 {
                return None;
            }
            if left_abs >= right_abs && left_abs > NV_EXACT && left_abs % right_abs == 0 {
                let quotient = left_abs / right_abs;
                // `quotient` <= |left| <= 2^64 - 1, and both signs are known (left != 0).
                let negative = (left < 0) != (right < 0);
                let signed = if negative {
                    -(quotient as i128)
                } else {
                    quotient as i128
                };
                // "It's exact but too negative for IV": the double.
                return Some(PerlNum::exact(signed).unwrap_or(PerlNum::nv(signed as f64)));
            }
        }
        let right = rhs.to_nv();
        if right == 0.0 {
            return None;
        }
        Some(PerlNum::nv(self.to_nv() / right))
    }

    /// Perl's numeric comparison (`<=>`); `None` if a value is NaN.
    pub(crate) fn num_cmp(self, rhs: Self) -> Option<Ordering> {
        match (self.as_integer(), rhs.as_integer()) {
            (Some(left), Some(right)) => Some(left.cmp(&right)),
            _ => self.to_nv().partial_cmp(&rhs.to_nv()),
        }
    }

    /// `$a < $b`.
    pub(crate) fn num_lt(self, rhs: Self) -> bool {
        self.num_cmp(rhs) == Some(Ordering::Less)
    }

    /// `$a > $b`.
    pub(crate) fn num_gt(self, rhs: Self) -> bool {
        self.num_cmp(rhs) == Some(Ordering::Greater)
    }

    /// `$a != $b` (true when a value is NaN).
    pub(crate) fn num_ne(self, rhs: Self) -> bool {
        self.num_cmp(rhs) != Some(Ordering::Equal)
    }

    /// `log($x)`, C's natural logarithm of the double. Perl dies for values of 0 and less,
    /// where C gives -inf or NaN; callers only pass positive values.
    pub(crate) fn log(self) -> Self {
        PerlNum::nv(self.to_nv().ln())
    }

    /// POSIX's `round($x)`: half away from zero, always a double.
    pub(crate) fn round(self) -> Self {
        PerlNum::nv(self.to_nv().round())
    }

    /// `SvIV`, the integer `sprintf "%d"` prints: a UV above `i64::MAX` wraps to the
    /// negative, a double is truncated, below -2^63 clamped to `i64::MIN`, from 2^63 on
    /// taken as a UV (wrapping), from 2^64 on `u64::MAX` (so `-1`), NaN 0.
    pub(crate) fn to_iv(self) -> i64 {
        match self.0 {
            Repr::Int(value) => value as u64 as i64,
            Repr::Nv(value) if value < TWO_63 => value as i64,
            Repr::Nv(value) => value as u64 as i64,
            Repr::Undef => 0,
        }
    }

    /// The value in a `u64`: negative values, NaN and `undef` give 0, larger ones
    /// `u64::MAX`.
    pub(crate) fn to_u64_saturating(self) -> u64 {
        match self.0 {
            Repr::Int(value) => value.clamp(0, i128::from(u64::MAX)) as u64,
            Repr::Nv(value) => value as u64,
            Repr::Undef => 0,
        }
    }

    /// The value in an `i64`, clamped; NaN and `undef` give 0.
    pub(crate) fn to_i64_saturating(self) -> i64 {
        match self.0 {
            Repr::Int(value) => value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            Repr::Nv(value) => value as i64,
            Repr::Undef => 0,
        }
    }

    /// `sprintf "%.<precision>f"`: the double, rounded half to even on its exact binary
    /// value, as glibc does.
    pub(crate) fn fixed(self, precision: usize) -> String {
        format!("{:.precision$}", self.to_nv())
    }
}

impl Default for PerlNum {
    fn default() -> Self {
        PerlNum::ZERO
    }
}

impl From<u64> for PerlNum {
    /// A JSON integer, as Perl's JSON decoders store it (IV, or UV above `i64::MAX`).
    fn from(value: u64) -> Self {
        PerlNum(Repr::Int(i128::from(value)))
    }
}

impl From<i64> for PerlNum {
    fn from(value: i64) -> Self {
        PerlNum(Repr::Int(i128::from(value)))
    }
}

/// How an integer result that does not fit an IV or a UV becomes a double.
#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    /// Always from the operands as doubles (`pp_multiply`).
    OperandsAsDoubles,
    /// The exact result rounded if it is negative with a magnitude that fits a UV, else
    /// from the operands (`pp_add`, `pp_subtract`).
    RoundNegativeUv,
}

/// `exact` of two integer operands if it fits an IV or UV, else a double (see
/// [`Overflow`]); `float` of the operands as doubles if either is no integer.
fn arithmetic(
    left: PerlNum,
    right: PerlNum,
    exact: fn(i128, i128) -> Option<i128>,
    float: fn(f64, f64) -> f64,
    overflow: Overflow,
) -> PerlNum {
    if let (Some(a), Some(b)) = (left.as_integer(), right.as_integer()) {
        if let Some(result) = exact(a, b) {
            if let Some(fits) = PerlNum::exact(result) {
                return fits;
            }
            if overflow == Overflow::RoundNegativeUv
                && result < 0
                && result.unsigned_abs() <= u128::from(u64::MAX)
            {
                return PerlNum::nv(result as f64);
            }
        }
    }
    PerlNum::nv(float(left.to_nv(), right.to_nv()))
}

impl Add for PerlNum {
    type Output = PerlNum;

    /// `$a + $b`.
    fn add(self, rhs: Self) -> Self {
        let overflow = Overflow::RoundNegativeUv;
        arithmetic(self, rhs, i128::checked_add, |a, b| a + b, overflow)
    }
}

impl Sub for PerlNum {
    type Output = PerlNum;

    /// `$a - $b`.
    fn sub(self, rhs: Self) -> Self {
        let overflow = Overflow::RoundNegativeUv;
        arithmetic(self, rhs, i128::checked_sub, |a, b| a - b, overflow)
    }
}

impl Mul for PerlNum {
    type Output = PerlNum;

    /// `$a * $b`.
    fn mul(self, rhs: Self) -> Self {
        let overflow = Overflow::OperandsAsDoubles;
        arithmetic(self, rhs, i128::checked_mul, |a, b| a * b, overflow)
    }
}

impl fmt::Display for PerlNum {
    /// The number interpolated in a string: decimal for an integer, `%.15g` for a double.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Repr::Int(value) => write!(f, "{value}"),
            Repr::Nv(value) => f.write_str(&format_g15(value)),
            Repr::Undef => Ok(()),
        }
    }
}

/// A double as Perl stringifies it: `%.15g`, except `0` for both zeros and `Inf`, `-Inf`,
/// `NaN` for the special values.
fn format_g15(value: f64) -> String {
    const DIGITS: i32 = 15;
    if value == 0.0 {
        return "0".into();
    }
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Inf" } else { "-Inf" }.into();
    }
    // The exponent after rounding to 15 significant digits decides the notation.
    let scientific = format!("{:.*e}", (DIGITS - 1) as usize, value);
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` always has an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` exponent is an integer");
    if (-4..DIGITS).contains(&exponent) {
        let decimals = (DIGITS - 1 - exponent) as usize;
        strip_zeros(&format!("{value:.decimals$}")).to_string()
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{}e{sign}{:02}",
            strip_zeros(mantissa),
            exponent.unsigned_abs()
        )
    }
}

/// `%g` drops trailing zeros of the fraction, and the point if nothing is left after it.
fn strip_zeros(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U64_MAX: PerlNum = PerlNum(Repr::Int(u64::MAX as i128));

    fn int(value: i128) -> PerlNum {
        PerlNum::exact(value).unwrap()
    }

    #[test]
    fn integer_arithmetic_is_exact_while_it_fits_iv_or_uv() {
        // perl -e 'print 92233720368547758 * 100' => 9223372036854775800
        assert_eq!(
            int(92_233_720_368_547_758) * PerlNum::iv(100),
            int(9_223_372_036_854_775_800)
        );
        // perl -e 'print 9223372036854775807 * 2' => 18446744073709551614 (UV)
        assert_eq!(
            PerlNum::iv(i64::MAX) * PerlNum::iv(2),
            int(18_446_744_073_709_551_614)
        );
        // perl -e 'print 184467440737095517 * 100' => 1.84467440737096e+19
        let product = int(184_467_440_737_095_517) * PerlNum::iv(100);
        assert_eq!(product, PerlNum::nv(184_467_440_737_095_517.0 * 100.0));
        assert_eq!(product.to_string(), "1.84467440737096e+19");
        // perl -e 'print -4611686018427387904 * 2' => -9223372036854775808
        assert_eq!(
            PerlNum::iv(-4_611_686_018_427_387_904) * PerlNum::iv(2),
            PerlNum::iv(i64::MIN)
        );
        // perl -e 'print -4611686018427387905 * 2' => -9.22337203685478e+18
        let below = PerlNum::iv(-4_611_686_018_427_387_905) * PerlNum::iv(2);
        assert_eq!(below.to_string(), "-9.22337203685478e+18");
        // perl -e 'print 9223372036854775807 - -9223372036854775807' => 18446744073709551614
        assert_eq!(
            PerlNum::iv(i64::MAX) - PerlNum::iv(-i64::MAX),
            int(18_446_744_073_709_551_614)
        );
        assert_eq!(
            (PerlNum::iv(-i64::MAX) - PerlNum::iv(i64::MAX)).to_string(),
            "-1.84467440737096e+19"
        );
        // perl -e 'printf "%.0f", 1990980354791980309 - 12243072578608432099'
        //   => -10252092223816452096, the exact -10252092223816451790 rounded (the
        //   operands as doubles would give -10252092223816450048)
        let difference = int(1_990_980_354_791_980_309) - int(12_243_072_578_608_432_099);
        assert_eq!(difference, PerlNum::nv(-10_252_092_223_816_452_096.0));
        // perl -e 'printf "%.0f", -8967379549718436003 + -8113018449838394395'
        //   => -17080397999556831232 (not -17080397999556829184)
        let sum = PerlNum::iv(-8_967_379_549_718_436_003) + PerlNum::iv(-8_113_018_449_838_394_395);
        assert_eq!(sum, PerlNum::nv(-17_080_397_999_556_831_232.0));
        // perl -e 'printf "%.0f", -4611686018427388604 * 3' => -13835058055282167808:
        // a product that does not fit is always the product of the doubles.
        let product = PerlNum::iv(-4_611_686_018_427_388_604) * PerlNum::iv(3);
        assert_eq!(product, PerlNum::nv(-13_835_058_055_282_167_808.0));
        assert_eq!(U64_MAX + PerlNum::iv(0), U64_MAX);
        assert_eq!(U64_MAX + PerlNum::iv(1), PerlNum::nv(TWO_64));
    }

    #[test]
    fn integral_doubles_below_2_53_count_as_integers() {
        // perl -e '$x = 0.5 * 9007199254740994; print $x * 3' => 13510798882111491
        let x = PerlNum::nv(0.5) * int(9_007_199_254_740_994);
        assert_eq!(x, PerlNum::nv(4_503_599_627_370_497.0));
        assert_eq!(x * PerlNum::iv(3), int(13_510_798_882_111_491));
        // perl -e '$y = 0.5 * 18014398509481988; print $y * 3' => 2.7021597764223e+16
        let y = PerlNum::nv(0.5) * int(18_014_398_509_481_988);
        assert_eq!((y * PerlNum::iv(3)).to_string(), "2.7021597764223e+16");
        assert_eq!(PerlNum::nv(-0.0).as_integer(), Some(0));
        // perl -e 'my $u; print 9007199254740993 - $u' => 9.00719925474099e+15
        let undef_difference = int(9_007_199_254_740_993) - PerlNum::UNDEF;
        assert_eq!(undef_difference.to_string(), "9.00719925474099e+15");
        assert_eq!(PerlNum::UNDEF.int(), PerlNum::ZERO);
        assert!(PerlNum::UNDEF.num_lt(PerlNum::iv(1)));
        assert_eq!(PerlNum::UNDEF.to_string(), "");
        assert_eq!(PerlNum::nv(2.5).as_integer(), None);
    }

    #[test]
    fn division_is_exact_only_above_2_53_without_remainder() {
        let two_53_plus_1 = int(9_007_199_254_740_993);
        let div = |a: PerlNum, b: PerlNum| a.checked_div(b).unwrap();
        // perl -e 'print 9007199254740993/1' => 9007199254740993 (PERL_TRY_UV_DIVIDE)
        assert_eq!(div(two_53_plus_1, PerlNum::iv(1)), two_53_plus_1);
        assert_eq!(
            div(PerlNum::iv(-9_007_199_254_740_993), PerlNum::iv(1)),
            PerlNum::iv(-9_007_199_254_740_993)
        );
        // perl -e 'print 9007199254740993/3' => 3002399751580331
        assert_eq!(
            div(two_53_plus_1, PerlNum::iv(3)),
            int(3_002_399_751_580_331)
        );
        // perl -e 'print 9007199254740993/7' => 1.28674275067728e+15
        assert_eq!(
            div(two_53_plus_1, PerlNum::iv(7)).to_string(),
            "1.28674275067728e+15"
        );
        // perl -e 'print 9007199254740992/2' => 4.5035996273705e+15 (2^53 is not above)
        assert_eq!(
            div(int(9_007_199_254_740_992), PerlNum::iv(2)).to_string(),
            "4.5035996273705e+15"
        );
        // An integral double of 2^54 is no integer operand.
        assert_eq!(
            div(PerlNum::nv(18_014_398_509_481_984.0), PerlNum::iv(2)),
            PerlNum::nv(9_007_199_254_740_992.0)
        );
        // u64::MAX / -1: exact, but too negative for an IV.
        assert_eq!(
            div(U64_MAX, PerlNum::iv(-1)),
            PerlNum::nv(-(u64::MAX as f64))
        );
        assert_eq!(PerlNum::iv(5).checked_div(PerlNum::ZERO), None);
        assert_eq!(PerlNum::nv(5.5).checked_div(PerlNum::nv(0.0)), None);
        assert_eq!(PerlNum::nv(5.5).checked_div(PerlNum::nv(-0.0)), None);
    }

    #[test]
    fn int_truncates_and_keeps_huge_doubles() {
        // perl -e 'print int(1e19), " ", int(2e19), " ", int(-1e19)'
        //   => 10000000000000000000 2e+19 -1e+19
        assert_eq!(PerlNum::nv(1e19).int(), int(10_000_000_000_000_000_000));
        assert_eq!(PerlNum::nv(2e19).int(), PerlNum::nv(2e19));
        assert_eq!(PerlNum::nv(2e19).int().to_string(), "2e+19");
        assert_eq!(PerlNum::nv(-1e19).int().to_string(), "-1e+19");
        assert_eq!(PerlNum::nv(-TWO_63).int(), PerlNum::nv(-TWO_63));
        assert_eq!(PerlNum::nv(-12.7).int(), PerlNum::iv(-12));
        assert_eq!(PerlNum::nv(12.7).int(), PerlNum::iv(12));
        assert_eq!(U64_MAX.int(), U64_MAX);
    }

    #[test]
    fn comparisons_are_exact_for_integers_only() {
        // perl -e 'print 18446744073709551615 == 2**64 ? "eq" : "ne"' => eq
        assert_eq!(U64_MAX.num_cmp(PerlNum::nv(TWO_64)), Some(Ordering::Equal));
        assert!(int(u64::MAX as i128 - 1).num_lt(U64_MAX));
        assert!(PerlNum::iv(-1).num_lt(PerlNum::iv(100)));
        assert!(int(1024).num_gt(PerlNum::iv(1023)));
        assert!(PerlNum::nv(f64::NAN).num_ne(PerlNum::nv(f64::NAN)));
        // Representation equality is not Perl's `==`.
        assert_ne!(PerlNum::iv(1), PerlNum::nv(1.0));
        assert_eq!(PerlNum::nv(f64::NAN), PerlNum::nv(f64::NAN));
    }

    #[test]
    fn sv_iv_wraps_and_clamps_like_sprintf_d() {
        // perl -e 'printf "%d %d %d %d", int(1.5e19), 1e20, -1e20, 9.3e18'
        //   => -3446744073709551616 -1 -9223372036854775808 -9146744073709551616
        assert_eq!(
            PerlNum::nv(1.5e19).int().to_iv(),
            -3_446_744_073_709_551_616
        );
        assert_eq!(PerlNum::nv(1e20).to_iv(), -1);
        assert_eq!(PerlNum::nv(-1e20).to_iv(), i64::MIN);
        assert_eq!(PerlNum::nv(9.3e18).to_iv(), -9_146_744_073_709_551_616);
        assert_eq!(PerlNum::nv(-12.7).to_iv(), -12);
        assert_eq!(PerlNum::nv(f64::NAN).to_iv(), 0);
    }

    #[test]
    fn doubles_print_with_15_significant_digits() {
        let text = |v: f64| PerlNum::nv(v).to_string();
        assert_eq!(text(0.0), "0");
        assert_eq!(text(-0.0), "0");
        assert_eq!(text(1e15), "1e+15");
        assert_eq!(text(1e14), "100000000000000");
        assert_eq!(text(123_456_789_012_345_678.0), "1.23456789012346e+17");
        assert_eq!(text(5.551_115_123_125_783e-16), "5.55111512312578e-16");
        assert_eq!(text(0.0001), "0.0001");
        assert_eq!(text(0.00001), "1e-05");
        assert_eq!(text(2.5), "2.5");
        assert_eq!(text(1e300), "1e+300");
        assert_eq!(text(f64::INFINITY), "Inf");
        assert_eq!(text(f64::NAN), "NaN");
        assert_eq!(int(-5).to_string(), "-5");
        assert_eq!(U64_MAX.to_string(), "18446744073709551615");
    }
}
