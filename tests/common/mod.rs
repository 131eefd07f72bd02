pub mod lab;
pub mod tenant;
pub mod vectors;
