//! The key/value cache of a session: per layer, the keys and values of every position held,
//! position-major, that can be rolled back.

use super::ops::Acts;

/// One layer's keys and values, `[positions, kv_heads · head_dim]` each (row `p` is position `p`).
#[derive(Clone, Debug, Default)]
pub struct LayerCache {
    width: usize,
    keys: Vec<f32>,
    values: Vec<f32>,
}

impl LayerCache {
    pub fn new(width: usize) -> Self {
        Self { width, keys: Vec::new(), values: Vec::new() }
    }
    /// Values per position (`kv_heads · head_dim`).
    pub fn width(&self) -> usize {
        self.width
    }
    /// Positions written (including ones appended by the forward in flight).
    pub fn positions(&self) -> usize {
        self.keys.len() / self.width.max(1)
    }
    /// Append the keys and values of new positions (`[n, width]` each).
    pub fn append(&mut self, keys: &Acts, values: &Acts) {
        assert_eq!((keys.cols(), values.cols()), (self.width, self.width), "LayerCache::append widths");
        assert_eq!(keys.rows(), values.rows(), "LayerCache::append rows");
        self.keys.extend_from_slice(keys.as_slice());
        self.values.extend_from_slice(values.as_slice());
    }
    /// All keys held, `[positions, width]` row-major.
    pub fn keys(&self) -> &[f32] {
        &self.keys
    }
    pub fn values(&self) -> &[f32] {
        &self.values
    }
    fn truncate(&mut self, len: usize) {
        self.keys.truncate(len * self.width);
        self.values.truncate(len * self.width);
    }
}

/// The caches of every layer and the number of positions committed.
///
/// A forward appends to each layer's cache as it goes and then [`KvCache::advance`]s; a failed or
/// rejected block is dropped by [`KvCache::truncate`], which keeps the allocation, so re-extending
/// after a rollback allocates nothing.
#[derive(Clone, Debug)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// `layers` layers of `width` values per position, holding at most `capacity` positions.
    pub fn new(layers: usize, width: usize, capacity: usize) -> Self {
        Self { layers: (0..layers).map(|_| LayerCache::new(width)).collect(), len: 0, capacity }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The most positions a session may hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn layer_mut(&mut self, layer: usize) -> &mut LayerCache {
        &mut self.layers[layer]
    }

    /// Commit `n` newly written positions (every layer must hold `len + n`).
    pub fn advance(&mut self, n: usize) {
        self.len += n;
        debug_assert!(self.layers.iter().all(|l| l.positions() == self.len), "KvCache::advance: layers out of step");
    }

    /// Drop every position from `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        for l in &mut self.layers {
            l.truncate(self.len);
        }
    }
}
