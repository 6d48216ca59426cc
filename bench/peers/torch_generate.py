#!/usr/bin/env python3
"""PyTorch CPU peer for bench/generate.ts: prefill + greedy decode with a static KV cache.

  /usr/bin/python3 bench/peers/torch_generate.py --config CONFIG.json --dtype f32|bf16 --prompts PROMPTS.json
      --batches 1,16 --new 128 --threads N --seed S

PROMPTS.json maps a batch size to its B prompts (lists of token ids; the same ones r1ts and llama.cpp get).
Prints one JSON line {"hello": true, ...}, then per batch
  {"batch": B, "prefill_tokens": B*P, "prefill_s": ..., "decode_tokens": B*(new-1), "decode_s": ...}
matching bench/generate.ts's accounting: the prefill forward (all B prompts in one [B, P] batch) yields the first
new token; the remaining new-1 tokens are decode steps of [B, 1].

Model code: the weights (make_models.py dense_params / ds_params, through torch_model.Work, seeded) and the blocks
(rms_norm, linear, swiglu, rope_half, torch_model.rope_interleaved_b, torch_model.moe_layer) are bench/peers/
torch_model.py's. What torch_model.py lacks is a KV cache, so the two attention functions are written here with one:
  * dense GQA: k/v of each layer in a static cache [B, KV, P+new, hd]; the query heads are grouped [B, KV, H/KV, S, hd]
    so one broadcast matmul reads each cached k/v once (no repeat_kv copy of the cache per step).
  * MLA: HF DeepseekV3Attention's cache (the per-head keys [q_nope ; rope(q_pe)] and values), the projections as
    torch_model.mla_b.
bf16: weights and activations bf16 (RoPE computed in f32 and cast back: view_as_complex has no bf16 in torch 1.13).
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

import torch_model as tm  # noqa: E402  (prints {"hello": false} and exits when torch is unavailable)

torch, mm = tm.torch, tm.mm


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def causal_mask(S, T, pos0):
    """(S, T) True where key j is after query i (absolute position pos0 + i)."""
    i = torch.arange(S).unsqueeze(1) + pos0
    return torch.arange(T).unsqueeze(0) > i


class Gen:
    def __init__(self, config, dtype, seed, max_len):
        w = tm.Work({"mode": "fwdbwd", "config": config, "batch": 1, "seq": max_len, "seed": seed})
        self.cfg, self.is_ds = w.cfg, w.is_ds
        self.dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
        self.P = {k: v.detach().to(self.dtype).contiguous() for k, v in w.P.items()}
        self.cos, self.sin = w.cos, w.sin  # f32 (max_len, dim/2)
        self.max_len = max_len
        self.params = sum(v.numel() for k, v in self.P.items()
                          if not k.startswith(f"model.layers.{self.cfg['num_hidden_layers']}."))  # no MTP

    def rope(self, fn, x, c, s):
        return fn(x.float(), c, s).to(self.dtype) if self.dtype != torch.float32 else fn(x, c, s)

    def new_cache(self, B):
        cfg, L, T = self.cfg, self.cfg["num_hidden_layers"], self.max_len
        if self.is_ds:
            H = cfg["num_attention_heads"]
            dk, dv = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"], cfg["v_head_dim"]
            return [(torch.zeros(B, H, T, dk, dtype=self.dtype), torch.zeros(B, H, T, dv, dtype=self.dtype)) for _ in range(L)]
        H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        hd = cfg["hidden_size"] // H
        return [(torch.zeros(B, KV, T, hd, dtype=self.dtype), torch.zeros(B, KV, T, hd, dtype=self.dtype)) for _ in range(L)]

    def dense_attn(self, p, x, c, s, pos0, kv):
        cfg, P = self.cfg, self.P
        B, S, _ = x.shape
        H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        hd, G, T = cfg["hidden_size"] // H, H // KV, pos0 + S
        q = mm.linear(x, P, p + ".q_proj").view(B, S, H, hd).transpose(1, 2)
        k = mm.linear(x, P, p + ".k_proj").view(B, S, KV, hd).transpose(1, 2)
        v = mm.linear(x, P, p + ".v_proj").view(B, S, KV, hd).transpose(1, 2)
        q, k = self.rope(mm.rope_half, q, c, s), self.rope(mm.rope_half, k, c, s)
        K, V = kv
        K[:, :, pos0:T] = k
        V[:, :, pos0:T] = v
        qg = q.reshape(B, KV, G, S, hd)  # head h = kv * G + g (HF repeat_kv order)
        sc = qg @ K[:, :, :T].unsqueeze(2).transpose(-1, -2) * hd ** -0.5  # (B, KV, G, S, T)
        if S > 1:
            sc = sc.masked_fill(causal_mask(S, T, pos0), float("-inf"))
        a = sc.softmax(-1) @ V[:, :, :T].unsqueeze(2)  # (B, KV, G, S, hd)
        return mm.linear(a.reshape(B, H, S, hd).transpose(1, 2).reshape(B, S, H * hd), P, p + ".o_proj")

    def mla_attn(self, p, x, c, s, pos0, kv):
        cfg, P = self.cfg, self.P
        B, S, _ = x.shape
        H = cfg["num_attention_heads"]
        dn, dr, r = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["kv_lora_rank"]
        eps, T = cfg["rms_norm_eps"], pos0 + S
        if cfg["q_lora_rank"] is None:
            q = mm.linear(x, P, p + ".q_proj")
        else:
            q = mm.linear(mm.rms_norm(mm.linear(x, P, p + ".q_a_proj"), P[p + ".q_a_layernorm.weight"], eps), P, p + ".q_b_proj")
        q = q.view(B, S, H, dn + dr)
        q_pe = self.rope(tm.rope_interleaved_b, q[..., dn:], c, s)
        kva = mm.linear(x, P, p + ".kv_a_proj_with_mqa")
        ckv = mm.rms_norm(kva[..., :r], P[p + ".kv_a_layernorm.weight"], eps)
        k_pe = self.rope(tm.rope_interleaved_b, kva[..., r:].unsqueeze(2), c, s)
        kvb = mm.linear(ckv, P, p + ".kv_b_proj").view(B, S, H, dn + cfg["v_head_dim"])
        K, V = kv
        K[:, :, pos0:T] = torch.cat([kvb[..., :dn], k_pe.expand(B, S, H, dr)], -1).transpose(1, 2)
        V[:, :, pos0:T] = kvb[..., dn:].transpose(1, 2)
        qf = torch.cat([q[..., :dn], q_pe], -1).transpose(1, 2)
        sc = qf @ K[:, :, :T].transpose(-1, -2) * mm.mla_softmax_scale(cfg)
        if S > 1:
            sc = sc.masked_fill(causal_mask(S, T, pos0), float("-inf"))
        o = sc.softmax(-1) @ V[:, :, :T]
        return mm.linear(o.transpose(1, 2).reshape(B, S, -1), P, p + ".o_proj")

    @torch.no_grad()
    def step(self, ids, pos0, cache):
        """ids (B, S) after pos0 cached positions -> logits of the last position (B, V)."""
        cfg, P = self.cfg, self.P
        S, eps = ids.shape[1], cfg["rms_norm_eps"]
        c, s = self.cos[pos0:pos0 + S], self.sin[pos0:pos0 + S]
        h = tm.embed(P, ids)
        for l in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{l}"
            x = mm.rms_norm(h, P[p + ".input_layernorm.weight"], eps)
            attn = self.mla_attn if self.is_ds else self.dense_attn
            h = h + attn(p + ".self_attn", x, c, s, pos0, cache[l])
            x = mm.rms_norm(h, P[p + ".post_attention_layernorm.weight"], eps)
            if self.is_ds and mm.is_moe_layer(cfg, l):
                h = h + tm.moe_layer(cfg, P, p, x, None)
            else:
                h = h + mm.swiglu(x, P, p + ".mlp")
        h = mm.rms_norm(h[:, -1], P["model.norm.weight"], eps)
        head = P["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else P["lm_head.weight"]
        return h @ head.t()


def main():
    config, dtype = arg("--config", None), arg("--dtype", "f32")
    prompts = {int(k): v for k, v in json.load(open(arg("--prompts", None))).items()}
    batches = [int(b) for b in arg("--batches", "1").split(",")]
    new, seed = int(arg("--new", "128")), int(arg("--seed", "1"))
    P = len(prompts[batches[0]][0])
    g = Gen(config, dtype, seed, P + new)
    tm.out({"hello": True, "torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": dtype, "params": g.params})
    g.step(torch.tensor([prompts[batches[0]][0][:8]], dtype=torch.long), 0, g.new_cache(1))  # warm-up, untimed
    for B in batches:
        ids = torch.tensor(prompts[B], dtype=torch.long)
        cache = g.new_cache(B)
        t0 = time.perf_counter()
        tok = g.step(ids, 0, cache).argmax(-1)
        t1 = time.perf_counter()
        for i in range(new - 1):
            tok = g.step(tok.view(B, 1), P + i, cache).argmax(-1)
        t2 = time.perf_counter()
        tm.out({"batch": B, "prefill_tokens": B * P, "prefill_s": t1 - t0, "decode_tokens": B * (new - 1), "decode_s": t2 - t1})


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - reported to the bench as a row note
        tm.out({"error": f"{type(e).__name__}: {e}"})
        sys.exit(1)
