//! Integration tests of phsync-tenant (one binary: see the README's Tests section).

mod batch;
mod cloud_rules;
mod hardening;
mod risk_rules;
mod tenant_file;
