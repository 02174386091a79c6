//! Output buffers of the CPU kernels, zeroed on the thread pool instead of by the caller.
//!
//! `vec![0f32; n]` zeroes the whole buffer on the calling thread before any parallel work
//! starts: once the allocator reuses freed memory (it does, between steps), that is a `memset`
//! of every activation-sized output on one core while the others wait — about 3.5 % of the
//! `small` SF-MD step's samples, on the main thread. [`par_zeroed_chunks`] zeroes each chunk
//! on the thread that is about to write it, while it is in that core's cache.

use core::mem::MaybeUninit;

use rayon::prelude::*;

/// A buffer of `len` floats, split in chunks of `chunk` (the last one shorter): each chunk is
/// zeroed on the thread pool and then handed to `f(index, chunk)` on the same thread. The
/// buffer is all zeros where `f` wrote nothing.
pub(crate) fn par_zeroed_chunks<F>(len: usize, chunk: usize, f: F) -> Vec<f32>
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    let mut buf: Vec<f32> = Vec::with_capacity(len);
    buf.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, part)| {
            part.fill(MaybeUninit::new(0.0));
            // SAFETY: every element of `part` was initialised on the line above, and
            // `MaybeUninit<f32>` has the layout of `f32`.
            let part = unsafe { &mut *(part as *mut [MaybeUninit<f32>] as *mut [f32]) };
            f(i, part);
        });
    // SAFETY: the chunks above cover `0..len` and each was initialised (had `f` panicked, the
    // panic would have left this function before this line, dropping `buf` with length 0).
    unsafe { buf.set_len(len) };
    buf
}
