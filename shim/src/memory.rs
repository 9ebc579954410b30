//! Keeping the idle shim's resident memory small: it lives as long as its containers, one
//! per task, so its idle footprint is paid per task.
//!
//! - One malloc arena: the worker threads of [`crate::blocking`] would otherwise each get an
//!   arena of their own that stays resident after the thread is gone.
//! - Trimming after each worker call: create/exec parse a whole OCI spec and more; the freed
//!   memory is given back instead of staying in the heap until the next call.

/// Call once, before any thread is started.
pub fn tune() {
    // SAFETY: mallopt only sets a malloc parameter; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns free heap memory to the kernel.
pub fn trim() {
    // SAFETY: malloc_trim is thread-safe and only releases memory malloc owns and has free.
    unsafe {
        libc::malloc_trim(0);
    }
}
