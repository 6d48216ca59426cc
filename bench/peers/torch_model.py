#!/usr/bin/env python3
"""PyTorch CPU peer for bench/model.ts and bench/train.ts (BENCH.md: Debian's python3-torch, run with
/usr/bin/python3, torch.set_num_threads = cores).

Protocol (JSON lines on stdin/stdout, shared with the r1ts worker in bench/model-common.ts):
  start   -> {"hello": true, "torch": ..., "threads": n, "matmul_gflops": ...}   (or {"hello": false, "error": ...})
  {"setup": {"mode": "train"|"fwdbwd"|"moe", "config": path, "batch": B, "seq": S, "seed": n, "experts": E}}
          -> {"ready": true, "impl": ..., "params": trainable parameter count}
  {"run": k} -> {"seconds": [...], "loss": last loss, "peak_rss_mb": ru_maxrss of this process}
  {"profile": k} -> {"step_ms": wall ms per step, "ops": {aten op: [self ms per step, calls per step]}}

The architectures are test/fixtures/models/make_models.py's plain-PyTorch reference modules (the ones r1ts's
goldens come from): rms_norm, linear, swiglu, rope_angles / rope_half / rope_interleaved, causal_softmax,
mla_softmax_scale, is_moe_layer and the weight initialisers dense_params / ds_params / mlp_init. That file
runs one unbatched sequence; here the same blocks run on [B, S, ...] batches (attention per batch row via
batched matmuls; torch 1.13 has no scaled_dot_product_attention, so scores -> causal mask -> softmax -> @ v,
as HF's eager attention). Two pieces are written here rather than reused because the fixture versions do
extra checking work that a timing run must not pay for:
  * gate_fast: make_models.gate's routing (sigmoid, biased selection, group-limited top-k, normalised
    unbiased weights x routed_scaling_factor) without its margin sorts and HF-fill assertion.
  * moe_layer: tokens dispatched per expert - one argsort of the (token, slot) pairs by expert, one
    index_select + SwiGLU over exactly each expert's tokens, one index_add back - as r1ts's MoE does;
    never dense over all experts. (make_models.moe also dispatches per expert but runs the gate twice for
    its trace.)
Loss and step match src/train/loop.ts: mean next-token CE (ignore -100) + 0.3 x MTP CE (DeepSeek), backward,
clip_grad_norm_(1.0), AdamW(lr 1e-4, betas (0.9, 0.999), eps 1e-8, weight_decay 0.1), zero grad, and the
aux-loss-free bias update b_i += 0.001 * sign(mean load - load_i) for DeepSeek.
"""
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "fixtures", "models"))
sys.dont_write_bytecode = True  # no __pycache__ next to the committed fixtures


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


try:
    import torch
    import torch.nn.functional as F
    import make_models as mm  # sets torch.set_num_threads(1) at import; reset below
except Exception as e:  # noqa: BLE001 - any import failure means "peer unavailable"
    out({"hello": False, "error": f"peer unavailable: {type(e).__name__}: {e}"})
    sys.exit(3)

THREADS = int(arg("--threads", str(os.cpu_count() or 1)))
torch.set_num_threads(THREADS)

MTP_LAMBDA = 0.3
BIAS_GAMMA = 0.001


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def matmul_gflops(n=512, reps=5):
    """A quick BLAS sanity figure: Debian's torch without libopenblas0-pthread falls back to the reference
    BLAS (~4 GFLOP/s) and then the comparison means nothing (BENCH.md)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


# ----------------------------------------------------------------------------------------------
# batched forward passes over make_models.py's blocks
# ----------------------------------------------------------------------------------------------
def rope_interleaved_b(x, cos, sin):  # x (B, S, ..., dim); make_models.rope_interleaved wants S first
    return mm.rope_interleaved(x.transpose(0, 1), cos, sin).transpose(0, 1)


def embed(P, ids):
    return F.embedding(ids, P["model.embed_tokens.weight"])


def dense_forward_b(cfg, P, ids, cos, sin):
    B, S = ids.shape
    d, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps = d // H, cfg["rms_norm_eps"]
    h = embed(P, ids)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}"
        x = mm.rms_norm(h, P[p + ".input_layernorm.weight"], eps)
        q = mm.linear(x, P, p + ".self_attn.q_proj").view(B, S, H, hd).transpose(1, 2)
        k = mm.linear(x, P, p + ".self_attn.k_proj").view(B, S, KV, hd).transpose(1, 2)
        v = mm.linear(x, P, p + ".self_attn.v_proj").view(B, S, KV, hd).transpose(1, 2)
        q, k = mm.rope_half(q, cos, sin), mm.rope_half(k, cos, sin)
        k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)  # HF repeat_kv
        a = mm.causal_softmax(q @ k.transpose(-1, -2) * hd ** -0.5) @ v
        h = h + mm.linear(a.transpose(1, 2).reshape(B, S, H * hd), P, p + ".self_attn.o_proj")
        h = h + mm.swiglu(mm.rms_norm(h, P[p + ".post_attention_layernorm.weight"], eps), P, p + ".mlp")
    h = mm.rms_norm(h, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else P["lm_head.weight"]
    return h @ head.t(), None


def mla_b(cfg, P, p, x, cos, sin):
    """Naive (training) MLA, HF DeepseekV3Attention's order: q = [q_nope ; rope(q_pe)], k = [k_nope ; rope(k_pe)]."""
    B, S, _ = x.shape
    H = cfg["num_attention_heads"]
    dn, dr, dv, r = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    eps = cfg["rms_norm_eps"]
    if cfg["q_lora_rank"] is None:
        q = mm.linear(x, P, p + ".q_proj")
    else:
        q = mm.linear(mm.rms_norm(mm.linear(x, P, p + ".q_a_proj"), P[p + ".q_a_layernorm.weight"], eps), P, p + ".q_b_proj")
    q = q.view(B, S, H, dn + dr)
    q_pe = rope_interleaved_b(q[..., dn:], cos, sin)
    kv = mm.linear(x, P, p + ".kv_a_proj_with_mqa")
    c = mm.rms_norm(kv[..., :r], P[p + ".kv_a_layernorm.weight"], eps)
    k_pe = rope_interleaved_b(kv[..., r:].unsqueeze(2), cos, sin)  # (B, S, 1, dr), shared by the heads
    kvb = mm.linear(c, P, p + ".kv_b_proj").view(B, S, H, dn + dv)
    qf = torch.cat([q[..., :dn], q_pe], -1).transpose(1, 2)
    kf = torch.cat([kvb[..., :dn], k_pe.expand(B, S, H, dr)], -1).transpose(1, 2)
    o = mm.causal_softmax(qf @ kf.transpose(-1, -2) * mm.mla_softmax_scale(cfg)) @ kvb[..., dn:].transpose(1, 2)
    return mm.linear(o.transpose(1, 2).reshape(B, S, H * dv), P, p + ".o_proj")


def gate_fast(cfg, P, p, x):
    """make_models.gate's routing without its fixture checks: (indices (T, k), weights (T, k))."""
    T, E, k = x.shape[0], cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    logits = x @ P[p + ".gate.weight"].t()
    scores = logits.sigmoid() if cfg["scoring_func"] == "sigmoid" else logits.softmax(-1)
    sel = scores.detach()
    bias = P.get(p + ".gate.e_score_correction_bias")
    if bias is not None:
        sel = sel + bias
    G = cfg["n_group"] or 1
    if cfg["topk_method"] in ("noaux_tc", "group_limited_greedy") and G > 1:
        grp = sel.view(T, G, E // G)
        gs = grp.topk(2, -1)[0].sum(-1) if cfg["topk_method"] == "noaux_tc" else grp.amax(-1)
        keep = torch.zeros(T, G, dtype=torch.bool)
        keep.scatter_(1, gs.topk(cfg["topk_group"], -1)[1], True)
        sel = sel.masked_fill(~keep.repeat_interleave(E // G, 1), float("-inf"))
    idx = sel.topk(k, -1)[1]
    w = scores.gather(1, idx)
    if cfg["norm_topk_prob"] and k > 1:
        w = w / (w.sum(-1, keepdim=True) + 1e-20)
    return idx, w * cfg["routed_scaling_factor"]


def moe_layer(cfg, P, p, x, loads):
    """DeepSeekMoE with per-expert dispatch; x (B, S, d). loads[p] accumulates tokens per expert."""
    B, S, d = x.shape
    E, k = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    xf = x.reshape(B * S, d)
    idx, w = gate_fast(cfg, P, p + ".mlp", xf)
    flat = idx.reshape(-1)
    order = flat.argsort()
    counts = torch.bincount(flat, minlength=E)
    if loads is not None:
        loads[p] = loads.get(p, 0) + counts
    tok = order.div(k, rounding_mode="floor")  # token of each (token, slot) pair, grouped by expert
    wsorted = w.reshape(-1).index_select(0, order)
    parts, start = [], 0
    for e, n in enumerate(counts.tolist()):
        if n == 0:
            continue
        t = tok[start:start + n]
        parts.append(mm.swiglu(xf.index_select(0, t), P, f"{p}.mlp.experts.{e}") * wsorted[start:start + n, None])
        start += n
    y = torch.zeros_like(xf).index_add(0, tok, torch.cat(parts, 0))
    if (p + ".mlp.shared_experts.gate_proj.weight") in P:
        y = y + mm.swiglu(xf, P, p + ".mlp.shared_experts")
    return y.view(B, S, d)


def ds_block_b(cfg, P, l, h, cos, sin, loads):
    p, eps = f"model.layers.{l}", cfg["rms_norm_eps"]
    h = h + mla_b(cfg, P, p + ".self_attn", mm.rms_norm(h, P[p + ".input_layernorm.weight"], eps), cos, sin)
    x = mm.rms_norm(h, P[p + ".post_attention_layernorm.weight"], eps)
    return h + (moe_layer(cfg, P, p, x, loads) if mm.is_moe_layer(cfg, l) else mm.swiglu(x, P, p + ".mlp"))


def ds_forward_b(cfg, P, ids, cos, sin, loads):
    """Main model + MTP depth 1, as make_models.ds_forward: MTP input = eh_proj([enorm(emb(t+1)) ; hnorm(h_t)])
    with h the normed final hidden state, one block at positions 0..S-2, shared_head.norm, shared head."""
    B, S = ids.shape
    L, eps = cfg["num_hidden_layers"], cfg["rms_norm_eps"]
    h = embed(P, ids)
    for l in range(L):
        h = ds_block_b(cfg, P, l, h, cos, sin, loads)
    h = mm.rms_norm(h, P["model.norm.weight"], eps)
    logits = h @ P["lm_head.weight"].t()
    mtp = None
    if cfg.get("num_nextn_predict_layers"):
        p = f"model.layers.{L}"
        e = mm.rms_norm(embed(P, ids[:, 1:]), P[p + ".enorm.weight"], eps)
        hh = mm.rms_norm(h[:, :-1], P[p + ".hnorm.weight"], eps)
        x = mm.linear(torch.cat([e, hh], -1), P, p + ".eh_proj")
        x = ds_block_b(cfg, P, L, x, cos[:S - 1], sin[:S - 1], loads)
        mtp = mm.rms_norm(x, P[p + ".shared_head.norm.weight"], eps) @ P["lm_head.weight"].t()
    return logits, mtp


# ----------------------------------------------------------------------------------------------
# workloads
# ----------------------------------------------------------------------------------------------
def load_cfg(path):
    with open(path) as f:
        return json.load(f)


def ds_defaults(cfg):
    """DeepSeek config keys the bench configs may leave to their defaults (src/models/config.ts)."""
    cfg.setdefault("n_group", 1)
    cfg.setdefault("topk_group", 1)
    cfg.setdefault("topk_method", "noaux_tc")
    cfg.setdefault("scoring_func", "sigmoid")
    cfg.setdefault("norm_topk_prob", True)
    cfg.setdefault("routed_scaling_factor", 1.0)
    cfg.setdefault("moe_layer_freq", 1)
    cfg.setdefault("first_k_dense_replace", 0)
    return cfg


class Work:
    def __init__(self, req):
        self.mode = req["mode"]
        cfg = load_cfg(req["config"])
        B, S, seed = req["batch"], req["seq"], req["seed"]
        torch.manual_seed(seed)
        self.loads = {}
        if self.mode == "moe":
            cfg = ds_defaults(cfg)
            cfg["n_routed_experts"] = req.get("experts") or cfg["n_routed_experts"]
            I = mm.Init(seed)
            E, d = cfg["n_routed_experts"], cfg["hidden_size"]
            I.lin("l.mlp.gate", E, d, std=0.15)
            for e in range(E):
                mm.mlp_init(I, f"l.mlp.experts.{e}", d, cfg["moe_intermediate_size"])
            if cfg.get("n_shared_experts"):
                mm.mlp_init(I, "l.mlp.shared_experts", d, cfg["moe_intermediate_size"] * cfg["n_shared_experts"])
            P = I.done()
            if cfg["topk_method"] == "noaux_tc":
                P["l.mlp.gate.e_score_correction_bias"] = torch.zeros(E)
            self.x = torch.randn(B, S, d, requires_grad=True)
        else:
            is_ds = cfg["model_type"] in ("deepseek_v3", "deepseek_v2")
            if is_ds:
                cfg = ds_defaults(cfg)
                P = mm.ds_params(cfg, seed)
                L = cfg["num_hidden_layers"]
                for k in range(cfg.get("num_nextn_predict_layers") or 0):  # checkpoint copies, unused in compute
                    P.pop(f"model.layers.{L + k}.embed_tokens.weight", None)
                    P.pop(f"model.layers.{L + k}.shared_head.head.weight", None)
                    # the checkpoint copies are not parameters of r1ts's model either
                for name in list(P):
                    if name.endswith("e_score_correction_bias"):
                        P[name] = torch.zeros_like(P[name])  # r1ts starts the balancing bias at 0
                dim = cfg["qk_rope_head_dim"]
            else:
                cfg.setdefault("tie_word_embeddings", False)
                bias = cfg.get("attention_bias", cfg["model_type"] == "qwen2")  # config.ts's default
                P = mm.dense_params(cfg, seed, qkv_bias=bias)
                dim = cfg["hidden_size"] // cfg["num_attention_heads"]
            self.cos, self.sin = mm.rope_angles(cfg, dim, S, torch.float32)
            self.is_ds = is_ds
            g = torch.Generator().manual_seed(seed)
            self.ids = torch.randint(0, cfg["vocab_size"], (B, S), generator=g)
            self.labels = torch.cat([self.ids[:, 1:], torch.full((B, 1), -100, dtype=torch.long)], 1)
        self.cfg = cfg
        self.P = {k: v.requires_grad_(not k.endswith("e_score_correction_bias")) for k, v in P.items()}
        self.params = [v for v in self.P.values() if v.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1) \
            if self.mode == "train" else None

    def n_params(self):
        return sum(p.numel() for p in self.params)

    def loss(self):
        V = self.cfg["vocab_size"]
        if self.is_ds:
            logits, mtp = ds_forward_b(self.cfg, self.P, self.ids, self.cos, self.sin, self.loads)
        else:
            logits, mtp = dense_forward_b(self.cfg, self.P, self.ids, self.cos, self.sin)
        loss = F.cross_entropy(logits.reshape(-1, V), self.labels.reshape(-1), ignore_index=-100)
        if mtp is not None:  # depth 1 at position t predicts the label of position t + 1
            loss = loss + MTP_LAMBDA * F.cross_entropy(mtp.reshape(-1, V), self.labels[:, 1:].reshape(-1), ignore_index=-100)
        return loss

    def step(self):
        if self.mode == "moe":
            moe_layer(self.cfg, self.P, "l", self.x, None).sum().backward()
            for p in self.params:
                p.grad = None
            self.x.grad = None
            return None
        loss = self.loss()
        loss.backward()
        if self.mode == "train":
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            self.opt.step()
            with torch.no_grad():  # aux-loss-free balancing (V3 2.1.2), after the optimizer step
                for p, load in self.loads.items():
                    b = self.P[p + ".mlp.gate.e_score_correction_bias"]
                    b += BIAS_GAMMA * torch.sign(load.float().mean() - load.float())
        self.loads = {}
        for p in self.params:
            p.grad = None
        return float(loss)


def main():
    if "--serve" not in sys.argv:
        print(__doc__)
        return
    out({"hello": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
         "matmul_gflops": round(matmul_gflops(), 1)})
    work = None
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
            if "setup" in msg:
                work = Work(msg["setup"])
                out({"ready": True, "impl": f"pytorch {torch.__version__} ({torch.get_num_threads()} threads)",
                     "params": work.n_params()})
            elif "profile" in msg:
                if work is None:
                    raise ValueError("profile before setup")
                k = int(msg["profile"])
                t = time.perf_counter()
                with torch.autograd.profiler.profile() as prof:
                    for _ in range(k):
                        work.step()
                total = (time.perf_counter() - t) * 1000 / k
                ops = {e.key: [e.self_cpu_time_total / 1000 / k, e.count / k] for e in prof.key_averages()
                       if e.self_cpu_time_total > 0}
                out({"step_ms": total, "ops": ops})
            elif "run" in msg:
                if work is None:
                    raise ValueError("run before setup")
                secs, loss = [], None
                for _ in range(int(msg["run"])):
                    t = time.perf_counter()
                    loss = work.step()
                    secs.append(time.perf_counter() - t)
                out({"seconds": secs, "loss": loss, "peak_rss_mb": peak_rss_mb()})
            else:
                raise ValueError(f"unknown request {line[:100]!r}")
        except Exception as e:  # noqa: BLE001 - reported to the driver, which names the peer
            out({"error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    main()
