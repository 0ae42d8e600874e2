//! Giving memory back to the OS after work on a large repository. glibc keeps what a 9 MiB
//! publish frees (small chunks scattered over the heap), and the summary that follows lays
//! its own peak on top: RSS rose +87 MiB above idle for a 58 MiB heap peak (bench/scale.sh's
//! 100k-target publish). `malloc_trim` after such work returns the free pages first.

/// Files or uploads larger than this make an operation large enough to trim after.
const LARGE_BYTES: usize = 1 << 20;

/// After work on `bytes` of metadata: [`trim`] when that was large (a small publish or
/// summary leaves nothing worth the walk over the free lists).
pub fn trim_after(bytes: usize) {
    if bytes > LARGE_BYTES {
        trim();
    }
}

/// Return the allocator's free pages to the OS (glibc's `malloc_trim`; nothing elsewhere).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks glibc's own free lists under its arena locks; it is
    // documented as safe to call from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
