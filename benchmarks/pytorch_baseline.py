"""The stylegan2-ada-pytorch side of the side-by-side figures in benchmarks/README.md.

Runs NVIDIA's public NVlabs/stylegan2-ada-pytorch code (a checkout given by --ada; PyTorch is not a
dependency of this project: run this in a scratch environment with torch installed) on the same
shapes as benchmarks/generate.py and benchmarks/train.py, and prints `img/s: <number>` last, like them:

  python benchmarks/pytorch_baseline.py --ada DIR generate --res 256 --fmap-base 16384 --batch 8 --reps 5
  python benchmarks/pytorch_baseline.py --ada DIR train --res 128 --fmap-base 8192 --batch 8 --batch-gpu 4 --steps 16

Their channel_base is twice our fmap_base (same channels per resolution); channel_max 512, 8 mapping
layers, float32, 2 threads by default. generate: G in eval mode (their fused modulated convolution),
noise_mode 'const', psi 1, no_grad, warm-up batches then the median of --reps. train: their
StyleGAN2Loss phases as their training_loop.py runs them (Gmain; Greg every 4; Dmain; Dreg every 16;
rounds of --batch-gpu accumulated with gain = interval; Adam with the lazy-regularization lr and
betas; nan_to_num of the gradients; the G_ema lerp), style mixing 0.9, R1 gamma 10, minibatch-stddev
group 4, reals U(-1, 1); one warm-up minibatch of every phase, then the mean of --steps minibatches.
On a CPU their custom ops fall back to their reference implementations.
"""

import argparse
import copy
import statistics
import sys
import time

import numpy as np


def networks(args, training):
    from training.networks import Discriminator, Generator
    common = dict(c_dim=0, img_resolution=args.res, img_channels=3)
    channels = dict(channel_base=2 * args.fmap_base, channel_max=512)
    G = Generator(z_dim=512, w_dim=512, mapping_kwargs=dict(num_layers=8), synthesis_kwargs=channels, **common)
    if not training:
        return G.eval().requires_grad_(False), None
    D = Discriminator(epilogue_kwargs=dict(mbstd_group_size=4), **channels, **common)
    return G.train().requires_grad_(False), D.train().requires_grad_(False)


def generate(args, torch):
    G, _ = networks(args, training=False)
    z = torch.from_numpy(np.random.RandomState(0).randn(args.batch, G.z_dim).astype(np.float32))
    c = torch.zeros([args.batch, 0])
    times = []
    with torch.no_grad():
        for i in range(args.warmup + args.reps):
            t0 = time.perf_counter()
            G(z, c, truncation_psi=1, noise_mode="const")
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    return args.batch / statistics.median(times)


def train(args, torch):
    from training.loss import StyleGAN2Loss
    G, D = networks(args, training=True)
    G_ema = copy.deepcopy(G).eval()
    loss = StyleGAN2Loss(device=torch.device("cpu"), G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
                         style_mixing_prob=0.9, r1_gamma=10, pl_batch_shrink=2, pl_decay=0.01, pl_weight=2)
    phases = []
    for name, module, interval in (("G", G, 4), ("D", D, 16)):
        ratio = interval / (interval + 1)
        opt = torch.optim.Adam(module.parameters(), lr=0.002 * ratio, betas=(0 ** ratio, 0.99 ** ratio), eps=1e-8)
        phases += [(name + "main", module, opt, 1), (name + "reg", module, opt, interval)]
    rounds = args.batch // args.batch_gpu
    rng = np.random.RandomState(0)
    as_tensor = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731

    def minibatch(index):
        reals = [as_tensor(rng.uniform(-1, 1, [args.batch_gpu, 3, args.res, args.res])) for _ in range(rounds)]
        c = torch.zeros([args.batch_gpu, 0])
        for name, module, opt, interval in phases:
            if index % interval:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            for r in range(rounds):
                z = as_tensor(rng.randn(args.batch_gpu, G.z_dim))
                loss.accumulate_gradients(phase=name, real_img=reals[r], real_c=c, gen_z=z, gen_c=c,
                                          sync=r == rounds - 1, gain=interval)
            module.requires_grad_(False)
            for p in module.parameters():
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
        beta = 0.5 ** (args.batch / 10000)
        with torch.no_grad():
            for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)

    t0 = time.perf_counter()
    minibatch(0)                              # warm-up: every phase
    print(f"warm-up minibatch (every phase): {time.perf_counter() - t0:.1f} s")
    times = []
    for index in range(1, args.steps + 1):
        t0 = time.perf_counter()
        minibatch(index)
        times.append(time.perf_counter() - t0)
    print(f"ms/minibatch: {statistics.mean(times) * 1000:.0f} (mean of {len(times)}, incl. lazy regularization)")
    return args.batch / statistics.mean(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ada", required=True, help="checkout of NVlabs/stylegan2-ada-pytorch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("task", choices=["generate", "train"])
    parser.add_argument("--res", type=int, default=256)
    parser.add_argument("--fmap-base", type=int, default=16384)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batch-gpu", type=int, default=4)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=16)
    args = parser.parse_args()
    sys.path.insert(0, args.ada)
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"# stylegan2-ada-pytorch ({args.ada}), torch {torch.__version__}, {args.threads} threads, "
          f"{args.task} {args.res}x{args.res}, channel_base {2 * args.fmap_base}, batch {args.batch}")
    ips = (generate if args.task == "generate" else train)(args, torch)
    print(f"img/s: {ips:.3f}")


if __name__ == "__main__":
    main()
