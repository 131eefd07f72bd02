pub mod tenant;
pub mod vectors;
