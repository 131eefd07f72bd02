pub mod ad;
pub mod lab;
pub mod openapi;
pub mod service;
pub mod sync_fixture;
pub mod tenant;
pub mod vectors;
