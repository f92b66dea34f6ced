//! Settings a configuration reload changes while the receive threads read
//! them for every packet: a small `Copy` struct kept as relaxed atomic
//! words. A read is a few plain loads (no reference count, no lock, no
//! shared cache line written), which an `ArcSwap` load per packet was not:
//! it cost the NAT's hot path 5 % (docs/PERFORMANCE.md). A reader racing a
//! reload may see some fields old and some new; every field is an
//! independent limit or timeout, so either value is a valid one.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};

/// A settings struct as `N` words and back.
pub trait Words<const N: usize>: Copy {
    /// The struct as words.
    fn to_words(self) -> [u32; N];
    /// The struct from words written by `to_words`.
    fn from_words(w: [u32; N]) -> Self;
}

/// A `T` that one thread may replace while others read it.
pub struct Live<T, const N: usize> {
    words: [AtomicU32; N],
    kind: PhantomData<T>,
}

impl<T: Words<N>, const N: usize> Live<T, N> {
    /// Holds `v`.
    pub fn new(v: T) -> Self {
        Live {
            words: v.to_words().map(AtomicU32::new),
            kind: PhantomData,
        }
    }

    /// The value in force.
    pub fn get(&self) -> T {
        T::from_words(std::array::from_fn(|i| {
            self.words.get(i).map_or(0, |w| w.load(Ordering::Relaxed))
        }))
    }

    /// Replaces the value (readers see each word change on its own).
    pub fn set(&self, v: T) {
        for (w, x) in self.words.iter().zip(v.to_words()) {
            w.store(x, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Pair {
        a: u32,
        on: bool,
    }

    impl Words<2> for Pair {
        fn to_words(self) -> [u32; 2] {
            [self.a, u32::from(self.on)]
        }
        fn from_words([a, on]: [u32; 2]) -> Self {
            Pair { a, on: on != 0 }
        }
    }

    #[test]
    fn holds_and_replaces_a_value() {
        let l = Live::new(Pair { a: 7, on: true });
        assert_eq!(l.get(), Pair { a: 7, on: true });
        l.set(Pair { a: 9, on: false });
        assert_eq!(l.get(), Pair { a: 9, on: false });
    }
}
