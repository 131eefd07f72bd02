pub mod lab;
pub mod vectors;
