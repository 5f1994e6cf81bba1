//! Block hashing (MD5) at the machine's best speed.
//!
//! Every byte a Keep server stores or serves is hashed, so MD5 speed bounds PUT and GET
//! throughput. The system's OpenSSL `libcrypto` has the fastest MD5 on a machine (hand-tuned
//! assembly; about a quarter faster than the `md-5` crate on x86-64), so it is used when it
//! can be loaded at run time; it is not linked, so cibox builds and runs without it, and then
//! the `md-5` crate does the work. Both give the same digests (tested).

use std::ffi::{c_int, c_uint, c_void};
use std::sync::OnceLock;

use md5::{Digest, Md5};

/// Which implementation hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The system's OpenSSL libcrypto, loaded at run time.
    Libcrypto,
    /// The `md-5` crate.
    Rust,
}

type CtxNew = unsafe extern "C" fn() -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type MdGet = unsafe extern "C" fn() -> *const c_void;
type DigestInit = unsafe extern "C" fn(*mut c_void, *const c_void, *mut c_void) -> c_int;
type DigestUpdate = unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> c_int;
type DigestFinal = unsafe extern "C" fn(*mut c_void, *mut u8, *mut c_uint) -> c_int;

/// The libcrypto functions MD5 needs, resolved once.
struct Libcrypto {
    ctx_new: CtxNew,
    ctx_free: CtxFree,
    md5: MdGet,
    init: DigestInit,
    update: DigestUpdate,
    finalize: DigestFinal,
    // Kept loaded for the life of the process: the pointers above point into it.
    _library: libloading::Library,
}

fn libcrypto() -> Option<&'static Libcrypto> {
    static LIBCRYPTO: OnceLock<Option<Libcrypto>> = OnceLock::new();
    LIBCRYPTO.get_or_init(load).as_ref()
}

fn load() -> Option<Libcrypto> {
    if std::env::var_os("CIBOX_MD5").is_some_and(|v| v == "rust") {
        return None;
    }
    for name in ["libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so"] {
        // SAFETY: loading libcrypto runs only its own initialisers, which have no
        // preconditions; its symbols are used with their documented C signatures below.
        let Ok(library) = (unsafe { libloading::Library::new(name) }) else {
            continue;
        };
        // SAFETY: each symbol is looked up with the signature OpenSSL 1.1 and 3 declare.
        let resolved = unsafe {
            (|| -> Result<Libcrypto, libloading::Error> {
                Ok(Libcrypto {
                    ctx_new: *library.get::<CtxNew>(b"EVP_MD_CTX_new\0")?,
                    ctx_free: *library.get::<CtxFree>(b"EVP_MD_CTX_free\0")?,
                    md5: *library.get::<MdGet>(b"EVP_md5\0")?,
                    init: *library.get::<DigestInit>(b"EVP_DigestInit_ex\0")?,
                    update: *library.get::<DigestUpdate>(b"EVP_DigestUpdate\0")?,
                    finalize: *library.get::<DigestFinal>(b"EVP_DigestFinal_ex\0")?,
                    _library: library,
                })
            })()
        };
        if let Ok(functions) = resolved {
            // Only if it really hashes (a FIPS-only build may refuse MD5).
            let works = LibcryptoHasher::new(&functions)
                .map(|h| h.finish_hex(&functions))
                .is_some_and(|d| d == "d41d8cd98f00b204e9800998ecf8427e");
            if works {
                return Some(functions);
            }
            // The test context was freed above; only now may the library go.
            drop(functions);
        }
    }
    None
}

/// The implementation [`BlockHasher::new`] uses on this machine.
pub fn backend() -> Backend {
    if libcrypto().is_some() {
        Backend::Libcrypto
    } else {
        Backend::Rust
    }
}

/// A libcrypto digest context, with the function that frees it (so dropping one never
/// needs the loaded library's static, which may be under construction).
struct LibcryptoHasher {
    ctx: *mut c_void,
    free: CtxFree,
}

// SAFETY: an EVP_MD_CTX is plain memory owned by this value; OpenSSL allows using a
// context from any thread as long as it is not used from two at once, which `&mut` ensures.
unsafe impl Send for LibcryptoHasher {}

impl LibcryptoHasher {
    fn new(lib: &Libcrypto) -> Option<LibcryptoHasher> {
        // SAFETY: documented OpenSSL calls; the context is freed in `Drop` or `finish_hex`.
        unsafe {
            let ctx = (lib.ctx_new)();
            if ctx.is_null() {
                return None;
            }
            let hasher = LibcryptoHasher {
                ctx,
                free: lib.ctx_free,
            };
            ((lib.init)(ctx, (lib.md5)(), std::ptr::null_mut()) == 1).then_some(hasher)
        }
    }

    fn update(&mut self, lib: &Libcrypto, data: &[u8]) {
        // SAFETY: the context is initialised and `data` is valid for `data.len()` bytes.
        unsafe {
            (lib.update)(self.ctx, data.as_ptr().cast(), data.len());
        }
    }

    fn finish_hex(self, lib: &Libcrypto) -> String {
        let mut out = [0u8; 16];
        let mut len: c_uint = 0;
        // SAFETY: MD5 writes 16 bytes into `out`; the context is freed by `Drop` after.
        unsafe {
            (lib.finalize)(self.ctx, out.as_mut_ptr(), &mut len);
        }
        hex::encode(&out[..(len as usize).min(16)])
    }
}

impl Drop for LibcryptoHasher {
    fn drop(&mut self) {
        // SAFETY: the context came from the same library's EVP_MD_CTX_new and is freed once;
        // the library stays loaded (it is never unloaded once it has produced a context).
        unsafe { (self.free)(self.ctx) }
    }
}

/// An MD5 computation over data given in pieces.
pub struct BlockHasher(Inner);

enum Inner {
    Libcrypto(LibcryptoHasher, &'static Libcrypto),
    Rust(Box<Md5>),
}

impl BlockHasher {
    /// A hasher using the fastest implementation on this machine.
    pub fn new() -> BlockHasher {
        Self::with_backend(backend())
    }

    /// A hasher using `backend` (the `md-5` crate when libcrypto is not available).
    pub fn with_backend(backend: Backend) -> BlockHasher {
        if backend == Backend::Libcrypto {
            if let Some(lib) = libcrypto() {
                if let Some(hasher) = LibcryptoHasher::new(lib) {
                    return BlockHasher(Inner::Libcrypto(hasher, lib));
                }
            }
        }
        BlockHasher(Inner::Rust(Box::new(Md5::new())))
    }

    /// Hashes the next piece.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            Inner::Libcrypto(hasher, lib) => hasher.update(lib, data),
            Inner::Rust(md5) => md5.update(data),
        }
    }

    /// The digest as 32 lowercase hex digits.
    pub fn finish_hex(self) -> String {
        match self.0 {
            Inner::Libcrypto(hasher, lib) => hasher.finish_hex(lib),
            Inner::Rust(md5) => hex::encode(md5.finalize()),
        }
    }
}

impl Default for BlockHasher {
    fn default() -> Self {
        Self::new()
    }
}

/// The MD5 of `data` as 32 lowercase hex digits.
pub fn md5_hex(data: &[u8]) -> String {
    let mut hasher = BlockHasher::new();
    hasher.update(data);
    hasher.finish_hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_agree_on_known_and_random_data() {
        assert_eq!(md5_hex(b"foo"), "acbd18db4cc2f85cedef654fccc4a4d8");
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        let data: Vec<u8> = (0..3_000_017u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect();
        let mut digests = Vec::new();
        for backend in [Backend::Libcrypto, Backend::Rust] {
            let mut hasher = BlockHasher::with_backend(backend);
            // Uneven pieces, as a request body arrives.
            for piece in data.chunks(65_521) {
                hasher.update(piece);
            }
            digests.push(hasher.finish_hex());
        }
        assert_eq!(digests[0], digests[1]);
        assert_eq!(digests[0], hex::encode(Md5::digest(&data)));
    }

    #[test]
    fn libcrypto_is_found_where_the_machine_has_it() {
        // Every machine this project runs on ships libcrypto (libssl3): make sure the fast
        // path is really taken there, not silently skipped.
        let present = ["libcrypto.so.3", "libcrypto.so.1.1"].iter().any(|name| {
            [
                "/usr/lib/x86_64-linux-gnu",
                "/usr/lib/aarch64-linux-gnu",
                "/usr/lib",
                "/lib",
            ]
            .iter()
            .any(|dir| std::path::Path::new(dir).join(name).exists())
        });
        if present && std::env::var_os("CIBOX_MD5").is_none() {
            assert_eq!(backend(), Backend::Libcrypto);
        }
    }
}
