pub mod ad;
pub mod drsr_lab;
pub mod lab;
pub mod sync_fixture;
pub mod tenant;
pub mod vectors;
