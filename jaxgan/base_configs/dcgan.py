"""Base config of the DCGAN family; every DCGAN experiment in configs/ starts from it.

The values are those of the w7 baseline at 128x128: batch 32, G lr 4e-4, D lr 4e-5, Adam betas
(0.5, 0.999), BatchNorm epsilon 5e-5, 400 epochs. Only the data source differs: it defaults to the
built-in generated faces, so that a config runs on a fresh install.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the base DCGAN config. Experiment files override only what differs."""
  config = ml_collections.ConfigDict()

  # Root of every random number in a run: weights, latents, label smoothing, data order.
  config.seed = 0

  config.model = ml_collections.ConfigDict()
  # Model family: the module jaxgan.families.<family> provides the state, train step and sampler.
  config.model.family = "dcgan"
  # Generator/discriminator pair within the family: "w7" (the lab's 4x4-kernel DCGAN),
  # "reproduct", "reproduct4", or the SDPC fusions "sdpc_generator" and "sdpc_discriminator".
  config.model.arch = "w7"
  # Channel width c: w7's G has 8c, 4c, 2c, c channels and its D c, 2c, 4c, 8c. The lab's runs
  # used 64, and smaller widths train faster on a CPU.
  config.model.width = 64
  # Length of the latent vector z.
  config.model.latent_dim = 100
  # Distribution of z: "normal" (N(0, 1)) or "uniform" (U(-1, 1)).
  config.model.latent_distribution = "normal"
  # Epsilon of every BatchNorm in G and D.
  config.model.bn_epsilon = 5e-5
  # Initializer of every conv, transposed conv and dense weight: "glorot_normal" (N(0, 2 / (fan_in
  # + fan_out)), not truncated, as the lab's PyTorch code) or "truncated_normal" (std 0.02,
  # redrawn beyond 2 std, as TensorFlow's DCGAN). Biases are always 0.
  config.model.init = "glorot_normal"
  # Compute dtype of G's and D's forward and backward passes: "float32" or "bfloat16". With
  # "bfloat16", parameters, optimizer states, BatchNorm statistics, losses and D's sigmoid scores
  # stay float32. It changes no array shape, so a run may resume with another dtype when
  # --allow_config_change is passed.
  config.model.dtype = "float32"
  # For the SDPC fusion architectures ("sdpc_generator", "sdpc_discriminator"): the workdir of a
  # finished "sdpc" run at the same image size, whose dictionaries the GAN uses, frozen.
  config.model.sdpc_workdir = ""
  # "sdpc_generator": weight beta of the L1 penalty beta * ||codes||_1 (mean over the batch)
  # added to G's loss.
  config.model.sdpc_sparsity_weight = 1e-3
  # "sdpc_discriminator": FISTA iterations unrolled on each image before D's head.
  config.model.sdpc_unrolled_steps = 15

  config.data = ml_collections.ConfigDict()
  # Image source: "folder" (PNG/JPEG files in data.dir), "tfds" (the simpsons_faces TFDS builder)
  # or "generated" (procedurally drawn cartoon faces, no download needed).
  config.data.source = "generated"
  # Folder of images for the "folder" source (not searched recursively).
  config.data.dir = ""
  # Comma-separated file ids (names up to the first dot, e.g. "191" for 191.png) left out of the
  # "folder" source, for example "191,242".
  config.data.exclude_ids = ""
  # For the "folder" source: also leave out the Simpsons Faces images known to be non-faces.
  config.data.exclude_known_non_faces = False
  # Training resolution in pixels (square); images are resized to it with bilinear filtering.
  config.data.image_size = 128
  # Global batch size, split evenly over all devices of all processes.
  config.data.batch_size = 32
  # Decoded images are kept in memory when they take at most this many GiB; above, they are
  # decoded again every epoch.
  config.data.cache_max_gib = 4.0
  # Number of images drawn by the "generated" source.
  config.data.num_generated = 2000
  # TFDS data folder for the "tfds" source ("" = TFDS's default, ~/tensorflow_datasets).
  config.data.tfds_data_dir = ""
  # Folder with the Kaggle archive or its extracted cropped/ folder, for the "tfds" source
  # ("" = <tfds_data_dir>/downloads/manual).
  config.data.tfds_manual_dir = ""
  # Flip each real image horizontally with probability 0.5 before D scores it (inside the train
  # step; fakes and sample grids are never flipped).
  config.data.random_flip = False
  # Threads that decode images (0 = one per CPU core).
  config.data.num_threads = 0
  # Batches prepared ahead of the train step.
  config.data.prefetch_batches = 2

  config.loss = ml_collections.ConfigDict()
  # The real target of D's loss is drawn once per batch from U(real_label_min, real_label_max),
  # which is one-sided label smoothing. Fakes get target 0 in D's loss and 1 in G's loss.
  config.loss.real_label_min = 0.9
  config.loss.real_label_max = 1.0
  # How D's real and fake BCE terms combine: "sum" or "mean" (half the sum).
  config.loss.d_reduction = "sum"
  # Thresholded G loss, in [0, 1]. 0 = off: G's loss is BCE(D(G(z)), 1). Above 0, the
  # floor(g_threshold * B) fakes that D scores lowest get target 0.5 in G's BCE, the others 0.95.
  config.loss.g_threshold = 0.0
  # Gaussian noise added to the real images before D scores them, with one std per batch drawn
  # from U(0, real_noise_max) (0 = no noise). Fakes and sample grids get none.
  config.loss.real_noise_max = 0.0

  config.optim = ml_collections.ConfigDict()
  # Optimizer of both networks: "adam" or "sgd" (with momentum).
  config.optim.optimizer = "adam"
  # Peak learning rates of the generator and the discriminator.
  config.optim.lr_g = 4e-4
  config.optim.lr_d = 4e-5
  # Adam's beta1, beta2 and epsilon.
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999
  config.optim.eps = 1e-8
  # SGD momentum.
  config.optim.momentum = 0.9
  # Learning-rate schedule of each network: "constant", "step" (multiply by step_decay_factor
  # every step_decay_epochs), "cosine" (to 0 at the last epoch) or "linear" (constant, then
  # linearly to 0 between decay_start_epoch and the last epoch).
  config.optim.schedule_g = "constant"
  config.optim.schedule_d = "constant"
  # Linear warm-up from 0 to the peak rate over this many epochs (0 = none), before any schedule.
  config.optim.warmup_epochs = 0.0
  config.optim.step_decay_epochs = 100.0
  config.optim.step_decay_factor = 0.5
  config.optim.decay_start_epoch = 0.0
  # Clip each network's gradient to this global L2 norm before the update (0 = no clipping).
  config.optim.clip_grad_norm = 0.0

  config.train = ml_collections.ConfigDict()
  # Length of the run. Raising it on a finished run continues that run.
  config.train.num_epochs = 400
  # Write step metrics (means over the last log_every_steps steps) this often.
  config.train.log_every_steps = 10
  # Save a 5x5 grid of samples from the fixed latents every this many epochs.
  config.train.sample_every_epochs = 1
  # Save a checkpoint every this many epochs; the last epoch is always saved.
  config.train.checkpoint_every_epochs = 5
  # Number of most recent checkpoints from checkpoint_every_epochs (and the last epoch) kept on
  # disk. The ring below and pinned checkpoints come on top of these.
  config.train.keep_checkpoints = 3
  # What a NaN or infinite loss, score, gradient norm or weight does: "stop" ends the run with an
  # error, and "rollback" restores the newest checkpoint, multiplies both learning rates by
  # rollback_lr_factor and continues, at most max_rollbacks times per run. Neither writes
  # non-finite values into a checkpoint. A divergence before the first checkpoint always stops.
  config.train.on_nonfinite = "stop"
  config.train.rollback_lr_factor = 0.5
  config.train.max_rollbacks = 3
  # Ring of recent checkpoints: with ring_epochs > 0 a checkpoint is saved after every epoch and
  # the newest ring_epochs checkpoints are kept, so a loss spike can be replayed from just before
  # it. When a monitor event fires, the checkpoints then in the ring are pinned and never deleted.
  # 0 = no ring: save only every checkpoint_every_epochs; an event then pins the newest checkpoint.
  # Each ring slot costs one checkpoint on disk (parameters and both optimizer states).
  config.train.ring_epochs = 3

  # Monitors of the training curves; events go to TensorBoard, the log and workdir/events.jsonl.
  config.monitor = ml_collections.ConfigDict()
  # A spike is a value more than spike_threshold robust standard deviations (1.4826 x MAD) away
  # from the median of the previous spike_window values of its curve (d_loss, g_loss, d_real,
  # d_fake). It is tested on per-epoch means and on means over window_steps steps.
  config.monitor.spike_threshold = 6.0
  # Number of previous values (epochs, or step windows) that the median and MAD are taken over.
  config.monitor.spike_window = 30
  # No spike is flagged before a curve has this many previous values (at most spike_window).
  config.monitor.spike_min_history = 10
  # Lower bound of the robust standard deviation, as a fraction of |median|, so that a curve that
  # stayed constant (MAD 0) does not flag its first small change.
  config.monitor.spike_mad_floor = 0.01
  # Length of the step windows in steps, counted in global steps (0 = only per-epoch means).
  config.monitor.window_steps = 50
  # Mode-collapse event when the sample grid's diversity (mean pairwise distance) falls below this
  # fraction of the same measure on collapse_num_real fixed real images (0 = off), after the
  # previous grid was at or above it. It is tested whenever a sample grid is written.
  config.monitor.collapse_ratio = 0.25
  # Number of real training images (fixed by the seed, never augmented) in that reference.
  config.monitor.collapse_num_real = 25

  # Evaluation during training (jaxgan/evaluation/periodic.py); python -m jaxgan.evaluate
  # evaluates saved checkpoints afterwards.
  config.eval = ml_collections.ConfigDict()
  # Evaluate every this many epochs and after the last epoch (0 = never).
  config.eval.every_epochs = 0
  # Comma-separated metrics. "swd" and "diversity" are cheap and need no weights. "nn" (nearest
  # training image) compares every fake with every training image. "fid" and "kid" need
  # eval.inception_weights and run Inception-v3 at 299x299, which is slow on a CPU.
  config.eval.metrics = "swd,diversity"
  # Generated images per evaluation, compared with as many training images.
  config.eval.num_images = 256
  # Seed of the evaluation latents, the chosen training images and the metrics' random draws.
  config.eval.seed = 0
  # Keep the checkpoint with the lowest value of this metric ("swd", "fid" or "kid") in
  # workdir/best/checkpoints; "" keeps none. It must be one of eval.metrics.
  config.eval.best_metric = ""
  # FID Inception weights .npz ("" = $JAXGAN_INCEPTION_WEIGHTS), in the layout described in
  # jaxgan/evaluation/inception.py.
  config.eval.inception_weights = ""

  return config
