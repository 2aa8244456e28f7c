"""The LoRA trainer's sample order (``BatchPlan``: stateless per step, every row once per epoch, sizes
never mixed in a batch, disjoint equal shares per DDP process) and its pixels (mask dilated as stage 2
dilates it, then resized like stage 2's FluxFill input)."""

import numpy as np

from training.lora_data import BatchPlan, prepare_sample


def _flat(batches):
    return [i for b in batches for i in b]


def test_each_epoch_is_a_seeded_permutation_cut_into_steps():
    sizes = [(96, 64)] * 7
    plan = BatchPlan(sizes, batch_size=2, gradient_accumulation=3, seed=42, epochs=2)
    assert (plan.micro_batches_per_epoch, plan.steps_per_epoch, plan.total_steps) == (4, 2, 4)
    for epoch in range(2):
        steps = [plan.step_batches(s) for s in range(epoch * 2, epoch * 2 + 2)]
        assert [len(s) for s in steps] == [3, 1]                    # the last step of an epoch takes the rest
        assert sorted(_flat(_flat(steps))) == list(range(7))         # every row exactly once
    assert _flat(plan.epoch_batches(0)) != _flat(plan.epoch_batches(1))
    again = BatchPlan(sizes, 2, 3, 42, 2)
    assert [again.step_batches(s) for s in (3, 0)] == [plan.step_batches(3), plan.step_batches(0)]  # no state
    assert _flat(BatchPlan(sizes, 2, 3, 7, 2).epoch_batches(0)) != _flat(plan.epoch_batches(0))
    longer = BatchPlan(sizes, 2, 3, 42, epochs=5, max_train_steps=5)
    assert (longer.total_steps, longer.epochs) == (5, 3)


def test_sizes_are_never_mixed_and_ddp_shares_are_equal_and_disjoint():
    sizes = [(96, 64), (64, 96)] * 5 + [(96, 64)]
    plans = [BatchPlan(sizes, 2, 1, 0, 1, num_processes=2, process_index=r) for r in (0, 1)]
    for step in range(plans[0].total_steps):
        shares = [p.step_batches(step)[0] for p in plans]
        assert [len(s) for s in shares] == [2, 2]
        assert len({sizes[i] for i in shares[0] + shares[1]}) == 1
    seen = [i for p in plans for s in range(p.total_steps) for i in p.step_batches(s)[0]]
    assert set(seen) == set(range(11))                               # short batches are filled by wrapping
    single = BatchPlan(sizes, 4, 1, 0, 1)
    assert all(len({sizes[i] for i in b}) == 1 for b in single.epoch_batches(0))
    assert sorted(_flat(single.epoch_batches(0))) == list(range(11))


def test_prepare_sample_dilates_then_resizes_like_stage2():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (80, 128, 3), dtype=np.uint8)
    mask = np.zeros((80, 128), bool)
    mask[40:60, 30:90] = True
    image, small = prepare_sample(rgb, mask, (64, 48), dilate_size=9)
    assert image.shape == (3, 48, 64) and small.shape == (1, 48, 64)
    assert image.dtype == small.dtype == np.float32
    assert image.min() >= -1.0 and image.max() <= 1.0
    assert set(np.unique(small)) == {0.0, 1.0}
    undilated = prepare_sample(rgb, mask, (64, 48), dilate_size=0)[1]
    assert small.sum() > undilated.sum()
    # a 9x9 dilation grows the box rows 40-59, cols 30-89 by 4 px, then x0.6 (rows) and x0.5 (cols)
    rows, cols = np.nonzero(small[0])
    assert abs(rows.min() - 36 * 0.6) <= 1 and abs(rows.max() - 63 * 0.6) <= 1
    assert abs(cols.min() - 26 * 0.5) <= 1 and abs(cols.max() - 93 * 0.5) <= 1
    # the image is the area-resized frame scaled to [-1, 1] as FluxFill's image processor does
    assert np.allclose(image.mean(axis=(1, 2)), rgb.reshape(-1, 3).mean(axis=0) / 127.5 - 1, atol=0.02)
