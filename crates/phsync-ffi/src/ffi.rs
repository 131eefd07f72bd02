//! The machinery every export shares: the panic boundary, handle and argument helpers, and
//! out-parameters that are written at entry so they are defined on every path.

use std::ffi::{c_char, CStr, CString};
use std::marker::PhantomData;

use crate::error::FfiError;

/// The one panic boundary; every export runs its body inside it.
///
/// `ffi_boundary!({ ... })`: the body evaluates to `Result<(), FfiError>`; the export returns
/// `PHS_OK`, the error's status (its message becomes the thread's last error), or
/// `PHS_E_INTERNAL` for a panic.
///
/// `ffi_boundary!(on_panic: value, { ... })`: for exports that return something else (or
/// nothing); the body's value is returned, or `value` after a panic (recorded as the last
/// error).
macro_rules! ffi_boundary {
    ($body:block) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(
            || -> ::std::result::Result<(), $crate::error::FfiError> { $body },
        )) {
            Ok(Ok(())) => $crate::phs_status::PHS_OK,
            Ok(Err(e)) => e.report(),
            Err(payload) => $crate::error::report_panic(&*payload),
        }
    }};
    (on_panic: $default:expr, $body:block) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(payload) => {
                $crate::error::report_panic(&*payload);
                $default
            }
        }
    }};
}
pub(crate) use ffi_boundary;

/// `let x: &T = try_ref_from_ptr!(ptr);` borrows the object behind a handle argument, or
/// returns `PHS_E_NULL_ARGUMENT` naming it. Only for handles whose type may be shared.
macro_rules! try_ref_from_ptr {
    ($ptr:ident) => {
        // SAFETY: every export taking a handle requires in its `# Safety` section that the
        // handle be NULL or live (from its `*_open`, not yet freed); NULL is checked.
        unsafe { $crate::ffi::try_ref($ptr, stringify!($ptr)) }?
    };
}
pub(crate) use try_ref_from_ptr;

/// Borrow `*ptr`, or fail with `PHS_E_NULL_ARGUMENT` naming `name`.
///
/// # Safety
/// `ptr` must be NULL or point to a live, aligned `T` that is not mutated during `'a`.
pub(crate) unsafe fn try_ref<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, FfiError> {
    // SAFETY: the caller guarantees `ptr` is NULL (as_ref gives None) or valid for `'a`.
    unsafe { ptr.as_ref() }.ok_or_else(|| FfiError::null(name))
}

/// Take back ownership of a handle made by [`Out::set_box`]; NULL gives `None`.
///
/// # Safety
/// `ptr` must be NULL or a pointer from `Box::into_raw` of a `T`, not yet taken back.
pub(crate) unsafe fn try_box_from_ptr<T>(ptr: *mut T) -> Option<Box<T>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL, and the caller guarantees it came from `Box::into_raw` and that
    // this is the only time it is taken back.
    Some(unsafe { Box::from_raw(ptr) })
}

/// Borrow a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(name));
    }
    // SAFETY: non-NULL, and the caller guarantees a NUL-terminated string.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map_err(|_| FfiError::invalid_utf8(name))
}

/// As [`str_arg`], for an optional string: NULL is `None`.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, FfiError> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded from the caller.
    unsafe { str_arg(ptr, name) }.map(Some)
}

/// Borrow `len` elements at `ptr` (bytes, UTF-16 code units, ...); NULL is an error even
/// when `len` is 0.
///
/// # Safety
/// `ptr` must be NULL or valid and aligned for `len` reads of `T` during `'a`.
pub(crate) unsafe fn slice_arg<'a, T>(
    ptr: *const T,
    len: usize,
    name: &str,
) -> Result<&'a [T], FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(name));
    }
    if len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(FfiError::invalid_argument(format!(
            "argument `{name}`: length {len} is too large"
        )));
    }
    // SAFETY: non-NULL, the size fits in isize (checked), and the caller guarantees `len`
    // readable, aligned elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// As [`slice_arg`], for an optional array: NULL is `None`.
///
/// # Safety
/// As [`slice_arg`].
pub(crate) unsafe fn opt_slice_arg<'a, T>(
    ptr: *const T,
    len: usize,
    name: &str,
) -> Result<Option<&'a [T]>, FfiError> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded from the caller.
    unsafe { slice_arg(ptr, len, name) }.map(Some)
}

/// Borrow a fixed-size byte array argument (an NT hash, a salt).
///
/// # Safety
/// `ptr` must be NULL or valid for `N` reads during `'a`.
pub(crate) unsafe fn array_arg<'a, const N: usize>(
    ptr: *const u8,
    name: &str,
) -> Result<&'a [u8; N], FfiError> {
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { slice_arg(ptr, N, name) }?;
    Ok(bytes.try_into().expect("slice_arg gave N bytes"))
}

/// An out-parameter. Made at the very start of an export, it writes the "nothing" value
/// (NULL, false, zeros, an empty string) so that the output is defined on every path, error
/// or panic; a NULL pointer is only an error when the export needs to write the result
/// ([`Out::check`], [`Out::set`]).
pub(crate) struct Out<'a, T: ?Sized> {
    slot: *mut T,
    name: &'static str,
    _borrow: PhantomData<&'a mut T>,
}

impl<'a, T> Out<'a, T> {
    /// Write `empty` to `*ptr` unless `ptr` is NULL.
    ///
    /// # Safety
    /// `ptr` must be NULL or valid and aligned for writes of `T` during `'a`, and not
    /// otherwise accessed meanwhile. Its old contents are never read.
    pub unsafe fn new(ptr: *mut T, name: &'static str, empty: T) -> Self {
        if !ptr.is_null() {
            // SAFETY: non-NULL and writable (the caller's guarantee); `write` does not read
            // or drop the old, possibly uninitialized, value.
            unsafe { ptr.write(empty) };
        }
        Out {
            slot: ptr,
            name,
            _borrow: PhantomData,
        }
    }

    /// Fail with `PHS_E_NULL_ARGUMENT` if the caller passed NULL.
    pub fn check(&self) -> Result<(), FfiError> {
        if self.slot.is_null() {
            return Err(FfiError::null(self.name));
        }
        Ok(())
    }

    /// Write the result.
    pub fn set(self, value: T) -> Result<(), FfiError> {
        self.check()?;
        // SAFETY: non-NULL (checked); `new`'s contract makes it writable during `'a`, and
        // it holds a valid `T` (written by `new`), so assigning drops a valid value.
        unsafe { *self.slot = value };
        Ok(())
    }
}

impl<'a, T> Out<'a, *mut T> {
    /// A handle out-parameter (`T **out`), set to NULL at entry.
    ///
    /// # Safety
    /// As [`Out::new`].
    pub unsafe fn handle(ptr: *mut *mut T, name: &'static str) -> Self {
        // SAFETY: forwarded from the caller.
        unsafe { Out::new(ptr, name, std::ptr::null_mut()) }
    }

    /// Hand `value` to the caller as a new handle, freed by the matching `*_free` with
    /// [`try_box_from_ptr`]. Nothing is allocated if `out` is NULL.
    pub fn set_box(self, value: T) -> Result<(), FfiError> {
        self.check()?;
        self.set(Box::into_raw(Box::new(value)))
    }
}

impl<'a> Out<'a, *mut c_char> {
    /// Hand `value` to the caller as JSON: a NUL-terminated string freed with
    /// `phs_string_free`. Nothing is allocated if `out` is NULL.
    pub fn set_json<V: serde::Serialize + ?Sized>(self, value: &V) -> Result<(), FfiError> {
        self.check()?;
        let text = serde_json::to_string(value).expect("results serialize");
        let text = CString::new(text).expect("JSON escapes NUL");
        self.set(text.into_raw())
    }
}

impl<'a, T> Out<'a, [T]> {
    /// Fail with `PHS_E_NULL_ARGUMENT` if the caller passed NULL.
    pub fn check(&self) -> Result<(), FfiError> {
        if self.slot.cast::<T>().is_null() {
            return Err(FfiError::null(self.name));
        }
        Ok(())
    }
}

impl<'a> Out<'a, [u8]> {
    /// A fixed-size byte output (an NT hash), zeroed at entry.
    ///
    /// # Safety
    /// `ptr` must be NULL or valid for `len` writes during `'a`, not otherwise accessed.
    pub unsafe fn bytes(ptr: *mut u8, len: usize, name: &'static str) -> Self {
        if !ptr.is_null() {
            // SAFETY: non-NULL and valid for `len` writes (the caller's guarantee).
            unsafe { std::ptr::write_bytes(ptr, 0, len) };
        }
        Out {
            slot: std::ptr::slice_from_raw_parts_mut(ptr, len),
            name,
            _borrow: PhantomData,
        }
    }

    /// Copy `bytes` (exactly the output's length) out.
    pub fn set_bytes(self, bytes: &[u8]) -> Result<(), FfiError> {
        self.check()?;
        let ptr = self.slot.cast::<u8>();
        assert_eq!(bytes.len(), self.slot.len(), "output length");
        // SAFETY: non-NULL, valid for `len` writes (`bytes`' contract), and `bytes` is a
        // Rust value that cannot overlap the caller's output buffer.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len()) };
        Ok(())
    }
}

impl<'a> Out<'a, [c_char]> {
    /// A caller-sized string buffer, made the empty string at entry (when it has room).
    ///
    /// # Safety
    /// `ptr` must be NULL or valid for `capacity` writes during `'a`, not otherwise
    /// accessed.
    pub unsafe fn c_string(ptr: *mut c_char, capacity: usize, name: &'static str) -> Self {
        if !ptr.is_null() && capacity > 0 {
            // SAFETY: non-NULL and valid for `capacity` >= 1 writes.
            unsafe { ptr.write(0) };
        }
        Out {
            slot: std::ptr::slice_from_raw_parts_mut(ptr, capacity),
            name,
            _borrow: PhantomData,
        }
    }

    /// Copy `s` and a NUL, or fail with `PHS_E_BUFFER_TOO_SMALL` (the buffer stays the
    /// empty string).
    pub fn set_str(self, s: &str) -> Result<(), FfiError> {
        self.check()?;
        let capacity = self.slot.len();
        let needed = s.len() + 1;
        if capacity < needed {
            return Err(FfiError::new(
                crate::phs_status::PHS_E_BUFFER_TOO_SMALL,
                format!("output buffer holds {capacity} bytes, {needed} are needed"),
            ));
        }
        let ptr = self.slot.cast::<u8>();
        // SAFETY: non-NULL (checked) and valid for `capacity` >= `needed` writes (the
        // contract of `c_string`); `s` is a Rust string that cannot overlap it.
        unsafe {
            std::ptr::copy_nonoverlapping(s.as_ptr(), ptr, s.len());
            ptr.add(s.len()).write(0);
        }
        Ok(())
    }
}
