//! The KV cache on the device: per layer, keys and values `[n_kv_heads, capacity, head_dim]`,
//! grown by doubling (never past the session's longest sequence) and written in place with
//! `slice_assign`. Rolling back rejected drafts only moves the length: the next append overwrites
//! the stale positions.

use burn::tensor::Tensor;

/// One layer's keys and values.
pub struct LayerCache {
    /// `[n_kv_heads, allocated, head_dim]` each; `None` before the first append.
    kv: Option<(Tensor<3>, Tensor<3>)>,
    max_len: usize,
}

impl LayerCache {
    fn new(max_len: usize) -> Self {
        Self { kv: None, max_len }
    }

    /// Write `k`, `v` (`[n_kv_heads, n, head_dim]`) at positions `pos0 .. pos0 + n` and return
    /// the keys and values of positions `0 .. pos0 + n`.
    pub fn append(&mut self, pos0: usize, k: Tensor<3>, v: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let [h, n, d] = k.dims();
        let end = pos0 + n;
        debug_assert!(end <= self.max_len, "LayerCache::append: {end} positions past the capacity {}", self.max_len);
        let allocated = self.kv.as_ref().map_or(0, |(k, _)| k.dims()[1]);
        if allocated < end {
            let target = (2 * allocated).max(64).min(self.max_len).max(end);
            let grow = |old: Option<Tensor<3>>, like: &Tensor<3>| {
                let extra = Tensor::<3>::zeros([h, target - allocated, d], (&like.device(), like.dtype()));
                match old {
                    Some(o) => Tensor::cat(vec![o, extra], 1),
                    None => extra,
                }
            };
            let (ok, ov) = match self.kv.take() {
                Some((a, b)) => (Some(a), Some(b)),
                None => (None, None),
            };
            self.kv = Some((grow(ok, &k), grow(ov, &v)));
        }
        let (ck, cv) = self.kv.take().expect("allocated above");
        let ck = ck.slice_assign([0..h, pos0..end, 0..d], k);
        let cv = cv.slice_assign([0..h, pos0..end, 0..d], v);
        let out = (ck.clone().narrow(1, 0, end), cv.clone().narrow(1, 0, end));
        self.kv = Some((ck, cv));
        out
    }
}

/// Every layer's cache and the positions held.
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
    max_len: usize,
}

impl KvCache {
    pub fn new(n_layers: usize, max_len: usize) -> Self {
        Self { layers: (0..n_layers).map(|_| LayerCache::new(max_len)).collect(), len: 0, max_len }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn capacity(&self) -> usize {
        self.max_len
    }
    pub fn layer_mut(&mut self, l: usize) -> &mut LayerCache {
        &mut self.layers[l]
    }
    /// Count `n` positions appended by a forward (after every layer wrote them).
    pub fn advance(&mut self, n: usize) {
        self.len += n;
    }
    /// Keep the first `len` positions.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}
