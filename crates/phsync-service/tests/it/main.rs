//! Integration tests of phsync-service (one binary: see the README's Tests section).

mod cloud_service;
mod hostile;
mod openapi_checker;
mod service_e2e;
