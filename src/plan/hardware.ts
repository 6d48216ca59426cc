/**
 * GPU profiles: the figures the planners need, per GPU.
 *
 * Every TFLOPs figure here is DENSE. NVIDIA's datasheets print the tensor-core figures "with sparsity" (2:4
 * structured sparsity, twice the dense rate) and mark them with an asterisk; we store half of those. FP64 and FP32
 * (non-tensor) figures are dense in the datasheets already.
 *
 * NVLink is the datasheet's total (bidirectional) bandwidth per GPU. The bandwidth one direction of an all-to-all
 * actually gets is lower: DeepSeek-V3's report (§3.2.2) measures ~160 GB/s on H800 (400 GB/s spec) against 50 GB/s
 * of InfiniBand per GPU — "NVLink offers 160 GB/s, roughly 3.2 times IB". We model the effective figure as
 * 80% of one direction (0.8 × spec / 2), which reproduces that 160 GB/s, unless a profile states its own.
 *
 * IB is per GPU and per direction: one 400 Gb/s ConnectX-7 NIC per GPU = 50 GB/s (H100/H800/H200/H20/B200
 * reference systems); A100 systems: one 200 Gb/s HDR NIC per GPU = 25 GB/s.
 */
import { UsageError } from '../errors.js';

export type Precision = 'fp64' | 'fp32' | 'bf16' | 'fp8';
export const PRECISIONS: readonly Precision[] = ['fp64', 'fp32', 'bf16', 'fp8'];

export interface GpuProfile {
  id: string;
  name: string;
  /** Dense TFLOPs per GPU; null where the GPU has no such path (A100 has no FP8 tensor cores). */
  tflopsDense: Record<Precision, number | null>;
  memoryGB: number;
  /** HBM bandwidth, TB/s. */
  hbmTBs: number;
  /** NVLink total bandwidth per GPU (datasheet, bidirectional), GB/s. */
  nvlinkGBs: number;
  /** Effective one-direction NVLink bandwidth for all-to-all traffic, GB/s. */
  nvlinkEffectiveGBs: number;
  /** InfiniBand per GPU, one direction, GB/s. */
  ibGBs: number;
  gpusPerNode: number;
  /** Where the figures come from. */
  source: string;
}

const eff = (nvlink: number) => 0.8 * (nvlink / 2);

export const GPUS: Record<string, GpuProfile> = {
  // NVIDIA H100 Tensor Core GPU datasheet (SXM5): FP64 34, FP64 TC 67, FP32 67, BF16 1,979*, FP8 3,958*
  // (* with sparsity), 80 GB HBM3, 3.35 TB/s, NVLink 900 GB/s.
  h100: {
    id: 'h100', name: 'NVIDIA H100 SXM5 80GB',
    tflopsDense: { fp64: 34, fp32: 67, bf16: 1979 / 2, fp8: 3958 / 2 },
    memoryGB: 80, hbmTBs: 3.35, nvlinkGBs: 900, nvlinkEffectiveGBs: eff(900), ibGBs: 50, gpusPerNode: 8,
    source: 'NVIDIA H100 datasheet (SXM5); tensor figures halved from the with-sparsity numbers',
  },
  // NVIDIA H800 SXM5 datasheet (China export variant): identical tensor cores and HBM to the H100, FP64 cut to
  // 1 TFLOPs, NVLink cut to 400 GB/s. DeepSeek-V3 was trained on 2,048 of them (V3 report §3.1).
  h800: {
    id: 'h800', name: 'NVIDIA H800 SXM5 80GB',
    tflopsDense: { fp64: 1, fp32: 67, bf16: 1979 / 2, fp8: 3958 / 2 },
    memoryGB: 80, hbmTBs: 3.35, nvlinkGBs: 400, nvlinkEffectiveGBs: 160, ibGBs: 50, gpusPerNode: 8,
    source: 'NVIDIA H800 datasheet; effective NVLink 160 GB/s and IB 50 GB/s from DeepSeek-V3 report §3.2.2',
  },
  // NVIDIA H200 datasheet (SXM): same compute as H100 SXM, 141 GB HBM3e at 4.8 TB/s, NVLink 900 GB/s.
  h200: {
    id: 'h200', name: 'NVIDIA H200 SXM 141GB',
    tflopsDense: { fp64: 34, fp32: 67, bf16: 1979 / 2, fp8: 3958 / 2 },
    memoryGB: 141, hbmTBs: 4.8, nvlinkGBs: 900, nvlinkEffectiveGBs: eff(900), ibGBs: 50, gpusPerNode: 8,
    source: 'NVIDIA H200 datasheet (SXM); tensor figures halved from the with-sparsity numbers',
  },
  // NVIDIA A100 datasheet (80GB SXM): FP64 9.7, FP32 19.5, BF16 312 dense (624 with sparsity), no FP8,
  // 80 GB HBM2e at 2,039 GB/s, NVLink 600 GB/s; HDR 200 Gb/s InfiniBand per GPU in DGX A100.
  a100: {
    id: 'a100', name: 'NVIDIA A100 SXM4 80GB',
    tflopsDense: { fp64: 9.7, fp32: 19.5, bf16: 312, fp8: null },
    memoryGB: 80, hbmTBs: 2.039, nvlinkGBs: 600, nvlinkEffectiveGBs: eff(600), ibGBs: 25, gpusPerNode: 8,
    source: 'NVIDIA A100 datasheet (80GB SXM); DGX A100 (8x HDR 200 Gb/s)',
  },
  // NVIDIA H20 (China export variant of Hopper): no public datasheet; the widely reported figures
  // (SemiAnalysis, Nov 2023; NVIDIA partner briefs): FP8 296 and BF16 148 TFLOPs dense, FP32 44, FP64 1,
  // 96 GB HBM3 at 4.0 TB/s, NVLink 900 GB/s.
  h20: {
    id: 'h20', name: 'NVIDIA H20 96GB',
    tflopsDense: { fp64: 1, fp32: 44, bf16: 148, fp8: 296 },
    memoryGB: 96, hbmTBs: 4.0, nvlinkGBs: 900, nvlinkEffectiveGBs: eff(900), ibGBs: 50, gpusPerNode: 8,
    source: 'reported figures (SemiAnalysis Nov 2023), dense',
  },
  // NVIDIA HGX B200 datasheet, per GPU (the 8-GPU figures divided by 8): FP8 9 PF* → 4.5 PF dense,
  // BF16 4.5 PF* → 2.25 PF dense, FP64 37 TFLOPs, 180 GB HBM3e at 7.7 TB/s, NVLink 5 at 1.8 TB/s.
  // FP32 (non-tensor) is not in the datasheet; we use the 75 TFLOPs NVIDIA quoted at launch (GTC 2024).
  b200: {
    id: 'b200', name: 'NVIDIA B200 (HGX) 180GB',
    tflopsDense: { fp64: 37, fp32: 75, bf16: 4500 / 2, fp8: 9000 / 2 },
    memoryGB: 180, hbmTBs: 7.7, nvlinkGBs: 1800, nvlinkEffectiveGBs: eff(1800), ibGBs: 50, gpusPerNode: 8,
    source: 'NVIDIA HGX B200 datasheet (per GPU); tensor figures halved from the with-sparsity numbers',
  },
};

export function gpuProfile(id: string): GpuProfile {
  const g = GPUS[id.toLowerCase()];
  if (!g) throw new UsageError(`unknown GPU '${id}'; known: ${Object.keys(GPUS).join(', ')}`);
  return g;
}

/** Dense peak FLOP/s of a GPU at a precision. */
export function peakFlops(g: GpuProfile, p: Precision): number {
  const t = g.tflopsDense[p];
  if (t === null) throw new UsageError(`${g.name} has no ${p} tensor-core path`);
  return t * 1e12;
}

/** Bytes per parameter/value at a precision. */
export function bytesOf(p: Precision): number {
  return { fp64: 8, fp32: 4, bf16: 2, fp8: 1 }[p];
}

export function parsePrecision(s: string): Precision {
  const p = s.toLowerCase();
  if (!(PRECISIONS as readonly string[]).includes(p)) throw new UsageError(`unknown precision '${s}'; one of ${PRECISIONS.join(', ')}`);
  return p as Precision;
}
