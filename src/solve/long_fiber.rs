//! One long contiguous fiber (`Direction::Flattened`): the kernels' single-column form.

use num_traits::Float;

use super::{BlockSolver, CyclicCholesky, Reweighted, RowBlock, SymmetricTridiagonal};

fn as_block<T>(fiber: &mut [T]) -> RowBlock<'_, T> {
    let n = fiber.len();
    RowBlock::new(fiber, n, 1, 1).expect("n values hold n rows of one")
}

/// `A⁻¹g` for one contiguous fiber of the tridiagonal operator.
pub(crate) fn tridiagonal<T: Float + Send + Sync>(f: &SymmetricTridiagonal, fiber: &mut [T], scratch: &mut [f64]) {
    f.solve(&mut as_block(fiber), scratch);
}

/// `A⁻¹g` for one contiguous fiber of the periodic operator.
pub(crate) fn cyclic<T: Float + Send + Sync>(f: &CyclicCholesky, fiber: &mut [T], scratch: &mut [f64]) {
    f.solve(&mut as_block(fiber), scratch);
}

/// `A⁻¹g` for one contiguous fiber of re-weighted H0.
pub(crate) fn reweighted<T: Float + Send + Sync>(f: &Reweighted, fiber: &mut [T], scratch: &mut [f64]) {
    f.solve(&mut as_block(fiber), scratch);
}
