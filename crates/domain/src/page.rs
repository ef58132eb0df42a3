//! The paging parameters of a list.

use crate::ItemId;

/// The largest page, and the page size when `limit` is not given.
pub const MAX_PAGE_LIMIT: u32 = 1000;
/// The page size when `limit` is not given.
pub const DEFAULT_PAGE_LIMIT: u32 = MAX_PAGE_LIMIT;

/// The most bytes of item documents one page carries: a page ends early (with a `next` link)
/// rather than exceed it, so that a thousand large items never make one answer of tens of
/// megabytes. With items of at most [`crate::MAX_ITEM_BYTES`], a page still holds at least
/// 256 of them.
pub const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// Which page of a list: at most `limit` items, starting after the `marker` item (in the
/// current order) and then skipping `offset` items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// 1 to [`MAX_PAGE_LIMIT`].
    pub limit: u32,
    /// The last item of the previous page.
    pub marker: Option<ItemId>,
    /// Items to skip after the marker.
    pub offset: u64,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_PAGE_LIMIT,
            marker: None,
            offset: 0,
        }
    }
}
