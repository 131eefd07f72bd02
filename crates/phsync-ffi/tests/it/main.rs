//! Integration tests of phsync-ffi (one binary: see the README's Tests section).

mod audit_abi;
mod c_abi;
mod engine_abi;
mod ffi_cloud;
mod header;
mod out_params;
