//! The element types chandir works on, `f32` and `f64`: one sealed trait that every path (the
//! kernels, the layouts, the optimizers and their saved states) takes, so that "is this `f32`?"
//! is a constant of the type, not a guess at run time.

use std::fmt::Debug;

use num_traits::Float;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) mod sealed {
    /// What the crate needs of an element type beyond [`num_traits::Float`]; not implementable
    /// outside the crate.
    pub trait Sealed: Sized + Copy {
        /// Whether the type is `f32` (else `f64`): kernels with an `f32` build take it.
        const IS_F32: bool;
        /// The value in `f64` (exact).
        fn to_f64(self) -> f64;
        /// The nearest value (overflow to ±∞, as `as` does).
        fn from_f64(x: f64) -> Self;
        /// The IEEE 754 bits, widened to `u64`.
        fn to_bits_u64(self) -> u64;
        /// The value of these bits; `None` if they do not fit the type.
        fn from_bits_u64(bits: u64) -> Option<Self>;
    }
    impl Sealed for f32 {
        const IS_F32: bool = true;
        #[inline(always)]
        fn to_f64(self) -> f64 {
            f64::from(self)
        }
        #[inline(always)]
        fn from_f64(x: f64) -> Self {
            x as f32
        }
        fn to_bits_u64(self) -> u64 {
            u64::from(self.to_bits())
        }
        fn from_bits_u64(bits: u64) -> Option<Self> {
            u32::try_from(bits).ok().map(f32::from_bits)
        }
    }
    impl Sealed for f64 {
        const IS_F32: bool = false;
        #[inline(always)]
        fn to_f64(self) -> f64 {
            self
        }
        #[inline(always)]
        fn from_f64(x: f64) -> Self {
            x
        }
        fn to_bits_u64(self) -> u64 {
            self.to_bits()
        }
        fn from_bits_u64(bits: u64) -> Option<Self> {
            Some(f64::from_bits(bits))
        }
    }
}

/// The element types chandir smooths and steps: `f32` and `f64` (sealed).
///
/// Saved optimizer states record the name of their element type, so that an `f64` state is
/// never silently rounded into an `f32` one.
///
/// ```
/// use chandir::Element;
/// assert_eq!(<f32 as Element>::DTYPE, "f32");
/// assert_eq!(<f64 as Element>::DTYPE, "f64");
/// ```
pub trait Element:
    Float + Send + Sync + Debug + Serialize + DeserializeOwned + 'static + sealed::Sealed
{
    /// The name written into saved states: `"f32"` or `"f64"`.
    const DTYPE: &'static str;
}

impl Element for f32 {
    const DTYPE: &'static str = "f32";
}

impl Element for f64 {
    const DTYPE: &'static str = "f64";
}

/// `x` in `f64`, exactly.
#[inline(always)]
pub(crate) fn to_f64<T: Element>(x: T) -> f64 {
    sealed::Sealed::to_f64(x)
}

/// The element nearest `x`.
#[inline(always)]
pub(crate) fn from_f64<T: Element>(x: f64) -> T {
    sealed::Sealed::from_f64(x)
}
