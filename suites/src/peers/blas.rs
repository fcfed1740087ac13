//! BLAS libraries opened at run time (MKL's `libmkl_rt`, OpenBLAS), so that the build needs
//! none of them: each is found by a path the user gives, and only its C interface is used.

use std::ffi::{c_char, c_int, CStr};
use std::path::{Path, PathBuf};

use libloading::Library;

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;

type Sgemm = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);
type SetThreads = unsafe extern "C" fn(c_int);
type Describe = unsafe extern "C" fn() -> *const c_char;
type MklVersion = unsafe extern "C" fn(*mut c_char, c_int);

/// One BLAS library's single-precision product and thread setting.
pub struct Blas {
    /// `MKL` or `OpenBLAS`.
    pub name: &'static str,
    /// What the library says of itself (version, the core it chose).
    pub about: String,
    sgemm: Sgemm,
    set_threads: SetThreads,
    // Keeps the two function pointers above valid.
    _lib: Library,
}

/// The symbol prefixes a library's C interface may carry (`scipy_` in the `scipy-openblas32`
/// wheel's OpenBLAS).
const PREFIXES: [&str; 2] = ["", "scipy_"];

impl Blas {
    /// Opens MKL's single dynamic library (`libmkl_rt.so.*`).
    pub fn mkl(path: &Path) -> Result<Blas, String> {
        let lib = open(path)?;
        let sgemm: Sgemm = symbol(&lib, path, "cblas_sgemm")?;
        let set_threads: SetThreads = symbol(&lib, path, "MKL_Set_Num_Threads")?;
        let version: MklVersion = symbol(&lib, path, "MKL_Get_Version_String")?;
        let mut buf = [0 as c_char; 256];
        // SAFETY: MKL writes at most `len` bytes, NUL-terminated, into the buffer given.
        unsafe { version(buf.as_mut_ptr(), buf.len() as c_int) };
        // SAFETY: `buf` is NUL-terminated: MKL terminates what it writes, and the last byte
        // is still the zero it was initialized with if the string filled it.
        let about = unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .trim()
            .to_string();
        Ok(Blas {
            name: "MKL",
            about,
            sgemm,
            set_threads,
            _lib: lib,
        })
    }

    /// Opens an OpenBLAS (`libopenblas.so`, or the `scipy-openblas32` wheel's library).
    pub fn openblas(path: &Path) -> Result<Blas, String> {
        let lib = open(path)?;
        for prefix in PREFIXES {
            let Ok(sgemm) = symbol::<Sgemm>(&lib, path, &format!("{prefix}cblas_sgemm")) else {
                continue;
            };
            let set_threads: SetThreads =
                symbol(&lib, path, &format!("{prefix}openblas_set_num_threads"))?;
            let config: Describe = symbol(&lib, path, &format!("{prefix}openblas_get_config"))?;
            let core: Describe = symbol(&lib, path, &format!("{prefix}openblas_get_corename"))?;
            // SAFETY: both return pointers to static NUL-terminated strings.
            let about = unsafe {
                format!(
                    "{} (core {})",
                    CStr::from_ptr(config()).to_string_lossy().trim(),
                    CStr::from_ptr(core()).to_string_lossy().trim()
                )
            };
            return Ok(Blas {
                name: "OpenBLAS",
                about,
                sgemm,
                set_threads,
                _lib: lib,
            });
        }
        Err(format!("{}: no cblas_sgemm in it", path.display()))
    }

    /// Sets the threads of this library's later calls.
    pub fn set_threads(&self, threads: usize) {
        // SAFETY: both libraries take any positive count and clamp it to their own maximum.
        unsafe { (self.set_threads)(threads.max(1) as c_int) }
    }

    /// `C[m x n] = A[m x k] * B[k x n]`, all row-major and packed.
    ///
    /// # Panics
    /// If a length does not match its shape or a dimension does not fit a C `int`.
    pub fn sgemm(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n);
        let dim = |v: usize| c_int::try_from(v.max(1)).expect("dimension fits a C int");
        // SAFETY: the three slices hold exactly the m x k, k x n and m x n row-major matrices
        // the arguments describe (checked above), with leading dimensions k, n and n.
        unsafe {
            (self.sgemm)(
                ROW_MAJOR,
                NO_TRANS,
                NO_TRANS,
                dim(m),
                dim(n),
                dim(k),
                1.0,
                a.as_ptr(),
                dim(k),
                b.as_ptr(),
                dim(n),
                0.0,
                c.as_mut_ptr(),
                dim(n),
            )
        }
    }
}

fn open(path: &Path) -> Result<Library, String> {
    // SAFETY: loading a BLAS runs its initializers, which only set up its own state and
    // threads; the user named this file as that library.
    unsafe { Library::new(path) }.map_err(|e| format!("{}: {e}", path.display()))
}

fn symbol<T: Copy>(lib: &Library, path: &Path, name: &str) -> Result<T, String> {
    // SAFETY: each call site names the C signature the library documents for `name`.
    unsafe { lib.get::<T>(name.as_bytes()) }
        .map(|s| *s)
        .map_err(|e| format!("{}: {name}: {e}", path.display()))
}

/// The library file named by the environment variable `var`, if it is set.
pub fn from_env(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}
