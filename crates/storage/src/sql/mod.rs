//! The SQL the repository runs, built with diesel: the filter of count and list, the order and
//! the marker of a page, the counters' statements, array-bound comparisons that keep prepared
//! statements few, and query plans.

pub(crate) mod counters;
pub(crate) mod explain;
pub(crate) mod filters;
pub(crate) mod ordering;
pub(crate) mod prepared;
