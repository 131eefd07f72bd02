pub mod drsr_lab;
pub mod lab;
pub mod tenant;
pub mod vectors;
