pub mod drsr_lab;
pub mod vectors;
