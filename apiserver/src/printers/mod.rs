//! Table printers (to be written).
