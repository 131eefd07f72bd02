pub mod vectors;
pub mod drsr_lab;
