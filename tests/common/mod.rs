pub mod ad;
pub mod lab;
pub mod sync_fixture;
pub mod tenant;
pub mod vectors;
