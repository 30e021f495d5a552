//! The trainer on real data (the embedded UCI digits, 8x8): freezing does
//! everything it promises, monitoring and early stopping work, feature
//! caching gives the same training, and an interrupted run resumes exactly.

use finetune_cnn::{BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, MaxPool2d};
use finetune_data::{Labelled, Normalization, SplitOptions, embedded};
use finetune_nn::{Dropout, Flatten, Linear, Module, ModuleExt, ReLU, Sequential};
use finetune_tensor::Tensor;
use finetune_train::{
    BnPolicy, Collect, EarlyStopping, FineTune, ImageSource, LrFindOptions, LrSpec, Monitor,
    OptimizerKind, ParamGroups, Schedule, TrainConfig, TrainError, Trainer, TrainerState,
    freeze_body, freeze_layers, freeze_patterns, freeze_to, lr_find, unfreeze,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn digits(per_class: usize) -> (ImageSource, ImageSource) {
    let all = embedded::digits()
        .unwrap()
        .take_per_class(per_class, 3)
        .unwrap();
    let parts = all.split(&SplitOptions::new(0.3, 0.0, 5)).unwrap();
    let norm = Normalization::new(vec![0.3], vec![0.4]).unwrap();
    (
        ImageSource::new(parts.train, norm.clone()),
        ImageSource::new(parts.validation, norm),
    )
}

/// conv(1->8) BN relu pool | flatten linear(128->32) relu | dropout linear(32->10)
fn cnn(seed: u64) -> Sequential<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    Sequential::new()
        .push(Conv2d::new(Conv2dConfig::new(1, 8, 3).padding(1), &mut rng).unwrap()) // 0
        .push(BatchNorm::new_2d(8, BatchNormConfig::default())) // 1
        .push(ReLU) // 2
        .push(MaxPool2d::new(2)) // 3
        .push(Flatten::default()) // 4
        .push(Linear::new(128, 32, true, &mut rng)) // 5
        .push(ReLU) // 6
        .push(Dropout::new(0.1).unwrap()) // 7
        .push(Linear::new(32, 10, true, &mut rng)) // 8
}

fn quick(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        lr: LrSpec::Fixed(3e-3),
        seed: 11,
        ..Default::default()
    }
}

fn state(net: &Sequential<f32>, prefix: &str) -> Vec<(String, Tensor<f32>)> {
    net.state_dict()
        .into_iter()
        .filter(|e| e.name.starts_with(prefix))
        .map(|e| (e.name, e.value))
        .collect()
}

#[test]
fn a_frozen_block_keeps_weights_and_batchnorm_statistics_bit_identical() {
    let (train, val) = digits(40);
    let mut net = cnn(1);
    // warm the BN statistics so they are not at their initial values
    Trainer::new(&net, quick(1))
        .unwrap()
        .fit(&mut net, &train, &val, None)
        .unwrap();
    let groups = ParamGroups::by_layer(&net);
    assert_eq!(
        groups
            .groups()
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>(),
        ["0", "1", "5", "8"]
    );
    let summary = freeze_to(&mut net, &groups, 2, BnPolicy::FreezeAll).unwrap();
    assert_eq!(summary.bn_frozen_stats, vec!["1".to_string()]);
    let frozen_before = [state(&net, "0."), state(&net, "1.")].concat();
    let head_before = state(&net, "8.");
    let mut trainer = Trainer::new(
        &net,
        TrainConfig {
            weight_decay: 0.1,
            optimizer: OptimizerKind::adamw(),
            ..quick(3)
        },
    )
    .unwrap();
    trainer.fit(&mut net, &train, &val, None).unwrap();
    let frozen_after = [state(&net, "0."), state(&net, "1.")].concat();
    assert_eq!(
        frozen_before, frozen_after,
        "weights or BN running stats of the frozen block moved"
    );
    assert_ne!(head_before, state(&net, "8."));
    // the optimizer never allocated state for frozen parameters
    assert!(!trainer.optimizer.has_state("0.weight") && !trainer.optimizer.has_state("1.weight"));
    assert!(trainer.optimizer.has_state("8.weight"));
}

#[test]
fn bn_policies_choose_what_trains_inside_a_frozen_block() {
    let mut net = cnn(2);
    let groups = ParamGroups::by_layer(&net);
    let s = freeze_to(&mut net, &groups, 2, BnPolicy::TrainAffine).unwrap();
    assert_eq!(s.bn_frozen_stats, vec!["1".to_string()]);
    net.for_each_parameter(|n, p| assert_eq!(p.is_trainable(), !n.starts_with("0."), "{n}"));
    let s = freeze_to(&mut net, &groups, 2, BnPolicy::TrainBn).unwrap();
    assert!(s.bn_frozen_stats.is_empty());
    let s = unfreeze(&mut net);
    assert_eq!(s.frozen, 0);
}

#[test]
fn freezing_by_pattern_and_layer_range_and_bad_requests() {
    let mut net = cnn(3);
    let s = freeze_patterns(
        &mut net,
        &["0.*".into(), "5.weight".into()],
        BnPolicy::FreezeAll,
    )
    .unwrap();
    assert_eq!(s.frozen, 8 * 9 + 8 + 128 * 32);
    net.for_each_parameter(|n, p| {
        assert_eq!(
            p.is_trainable(),
            !(n.starts_with("0.") || n == "5.weight"),
            "{n}"
        )
    });
    let e = freeze_patterns(&mut net, &["features.*".into()], BnPolicy::FreezeAll).unwrap_err();
    assert!(
        matches!(e, TrainError::Freeze(_)) && e.to_string().contains("matches no parameter"),
        "{e}"
    );
    let s = freeze_layers(&mut net, 0..6, BnPolicy::FreezeAll).unwrap();
    assert_eq!(s.trainable, 32 * 10 + 10);
    assert!(freeze_layers(&mut net, 20..30, BnPolicy::FreezeAll).is_err());
    let groups = ParamGroups::by_layer(&net);
    assert!(freeze_to(&mut net, &groups, 9, BnPolicy::FreezeAll).is_err());
    let s = freeze_body(&mut net, &groups, BnPolicy::FreezeAll).unwrap();
    assert_eq!(s.trainable, 330);
}

#[test]
fn frozen_layers_do_no_backward_work() {
    let (train, _) = digits(10);
    let mut net = cnn(4);
    let batch = finetune_train::BatchSource::batches(&train, 16, None, 0)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let ops = |net: &mut Sequential<f32>| {
        let mut tape = finetune_autograd::Tape::new();
        let x = tape.constant(batch.inputs.clone());
        let y = net.forward(&mut tape, x).unwrap();
        let l = tape
            .cross_entropy(y, &batch.targets, &Default::default())
            .unwrap();
        tape.backward(l).unwrap().backward_ops()
    };
    let all = ops(&mut net);
    let groups = ParamGroups::by_layer(&net);
    freeze_body(&mut net, &groups, BnPolicy::FreezeAll).unwrap();
    let head = ops(&mut net);
    // only the head linear and the loss run: no conv, BN, pool or first-linear backward
    assert_eq!(head, 2, "all trainable ran {all}");
    assert!(all >= 9);
}

#[test]
fn history_early_stopping_and_best_restore() {
    let (train, val) = digits(30);
    let mut net = cnn(5);
    let observer = Collect::default();
    let cfg = TrainConfig {
        lr: LrSpec::Fixed(0.05),
        monitor: Monitor::ValLoss,
        early_stopping: Some(EarlyStopping {
            patience: 2,
            min_delta: 0.0,
        }),
        ..quick(30)
    };
    let mut trainer = Trainer::new(&net, cfg)
        .unwrap()
        .with_observer(Box::new(observer));
    let report = trainer.fit(&mut net, &train, &val, None).unwrap();
    let h = &trainer.history;
    assert!(
        report.stopped_early,
        "an aggressive rate on 210 examples should stop early within 30 epochs"
    );
    let best = report.best_epoch.unwrap();
    let best_loss = h.epochs[best - 1].val_loss;
    assert!(h.epochs.iter().all(|r| r.val_loss >= best_loss));
    assert_eq!(
        h.epochs.len(),
        best + 2,
        "patience 2: two bad epochs after the best"
    );
    // the restored model scores exactly the best epoch's validation loss
    assert!(report.restored_best);
    assert!(
        (report.final_eval.loss - best_loss).abs() < 1e-9,
        "{} vs {best_loss}",
        report.final_eval.loss
    );
    // the report has per-class accuracy and a confusion matrix that add up
    let e = &report.final_eval;
    assert_eq!(e.confusion.iter().flatten().sum::<usize>(), val.data.len());
    assert_eq!(e.per_class_accuracy.len(), 10);
    assert!(e.top_k.1 >= e.accuracy);
    let dir = std::env::temp_dir().join(format!("finetune-history-{}", std::process::id()));
    h.write(&dir).unwrap();
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), h.epochs.len() + 1);
    assert!(csv.starts_with("epoch,phase,train_loss"));
    assert_eq!(
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        h.epochs.len()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_nan_loss_stops_the_run_and_gives_back_the_weights_before_training() {
    let (train, val) = digits(10);
    let mut net = cnn(6);
    let before = net.state_dict();
    let mut trainer = Trainer::new(
        &net,
        TrainConfig {
            lr: LrSpec::Fixed(1e30),
            optimizer: OptimizerKind::Sgd {
                momentum: 0.0,
                dampening: 0.0,
                nesterov: false,
            },
            ..quick(3)
        },
    )
    .unwrap();
    let report = trainer.fit(&mut net, &train, &val, None).unwrap();
    let d = report.diverged.expect("the run must say it diverged");
    assert_eq!(d.epoch, 1);
    assert!(d.reason.contains("loss"), "{}", d.reason);
    assert!(
        trainer
            .history
            .warnings
            .iter()
            .any(|w| w.contains("lr-find"))
    );
    assert_eq!(report.best_epoch, None);
    for (a, b) in before.iter().zip(net.state_dict()) {
        assert_eq!(
            a.value, b.value,
            "{} is not the weight before training",
            a.name
        );
    }
}

#[test]
fn adam_at_a_huge_rate_diverges_and_keeps_the_best_finite_epoch() {
    let (train, val) = digits(10);
    // a sane first epoch, then a rate that blows the loss up (finite, but huge)
    let mut net = cnn(6);
    let mut trainer = Trainer::new(&net, quick(1)).unwrap();
    let first = trainer.fit(&mut net, &train, &val, None).unwrap();
    assert!(first.diverged.is_none());
    let good = net.state_dict();
    let mut trainer = Trainer::new(
        &net,
        TrainConfig {
            lr: LrSpec::Fixed(1e6),
            ..quick(4)
        },
    )
    .unwrap();
    let report = trainer.fit(&mut net, &train, &val, None).unwrap();
    let d = report.diverged.expect("Adam at 1e6 must be caught");
    assert!(
        d.reason.contains("validation loss before training")
            || d.reason.contains("NaN")
            || d.reason.contains("inf"),
        "{}",
        d.reason
    );
    assert!(trainer.history.epochs.len() <= 4);
    net.for_each_parameter(|n, p| {
        assert!(p.value().all_finite(), "{n} holds non-finite values");
        let max = p
            .value()
            .as_slice()
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()));
        assert!(max < 1e3, "{n} reached {max}: not the best finite weights");
    });
    // the best epoch is restored, or (if none was better) the weights before this run
    if report.best_epoch.is_none() {
        for (a, b) in good.iter().zip(net.state_dict()) {
            assert_eq!(a.value, b.value, "{}", a.name);
        }
    }
}

#[test]
fn the_divergence_factor_must_be_above_one_or_off() {
    for bad in [0.5, 1.0, f64::NAN, f64::INFINITY] {
        let cfg = TrainConfig {
            divergence_factor: Some(bad),
            ..quick(1)
        };
        assert!(cfg.validate().is_err(), "{bad} accepted");
    }
    assert!(
        TrainConfig {
            divergence_factor: None,
            ..quick(1)
        }
        .validate()
        .is_ok()
    );
    assert!(
        TrainConfig {
            divergence_factor: Some(3.0),
            ..quick(1)
        }
        .validate()
        .is_ok()
    );
}

#[test]
fn feature_cache_trains_the_same_and_is_refused_with_augmentation() {
    let (train, val) = digits(20);
    let run = |cache: bool| {
        let mut net = cnn(7);
        let mut cfg = quick(3);
        cfg.cache_features = cache;
        let mut trainer = Trainer::new(&net, cfg)
            .unwrap()
            .with_observer(Box::new(Collect::default()));
        freeze_layers(&mut net, 0..6, BnPolicy::FreezeAll).unwrap();
        let r = trainer.fit(&mut net, &train, &val, None).unwrap();
        (
            state(&net, "8."),
            r.final_eval.loss,
            trainer.history.epochs[0].cached_features,
        )
    };
    let (w_plain, loss_plain, c0) = run(false);
    let (w_cached, loss_cached, c1) = run(true);
    assert!(!c0 && c1);
    for ((n, a), (_, b)) in w_plain.iter().zip(&w_cached) {
        assert!(
            a.max_abs_diff(b).unwrap() < 1e-5,
            "{n} differs with the cache"
        );
    }
    assert!((loss_plain - loss_cached).abs() < 1e-4);
    // augmentation makes the prefix's outputs change every epoch: refused
    let mut shifted = train.clone();
    shifted.shift = Some(1);
    let mut net = cnn(7);
    freeze_layers(&mut net, 0..6, BnPolicy::FreezeAll).unwrap();
    let mut trainer = Trainer::new(
        &net,
        TrainConfig {
            cache_features: true,
            ..quick(1)
        },
    )
    .unwrap();
    let e = trainer.fit(&mut net, &shifted, &val, None).unwrap_err();
    assert!(
        matches!(e, TrainError::CacheRefused(_)) && e.to_string().contains("random shifts"),
        "{e}"
    );
}

#[test]
fn gradual_unfreezing_releases_one_group_every_k_epochs() {
    let (train, val) = digits(10);
    let mut net = cnn(8);
    let observer = Collect::default();
    let mut trainer = Trainer::new(
        &net,
        TrainConfig {
            gradual_unfreeze: Some(1),
            cache_features: true,
            ..quick(4)
        },
    )
    .unwrap()
    .with_observer(Box::new(observer));
    freeze_body(&mut net, &trainer.groups.clone(), BnPolicy::FreezeAll).unwrap();
    trainer.fit(&mut net, &train, &val, None).unwrap();
    let trainable: Vec<usize> = trainer
        .history
        .epochs
        .iter()
        .map(|r| r.trainable_params)
        .collect();
    // head only, then + linear 5, then + BN 1, then + conv 0
    assert_eq!(
        trainable,
        vec![330, 330 + 4128, 330 + 4128 + 16, 330 + 4128 + 16 + 80]
    );
    let cached: Vec<bool> = trainer
        .history
        .epochs
        .iter()
        .map(|r| r.cached_features)
        .collect();
    // the cache is rebuilt after each unfreeze: layers 0..6, again 0..6 (group 5 is
    // after the cut), then only the conv 0..1 once BN trains, then nothing
    assert_eq!(cached, vec![true, true, true, false]);
}

/// What survives a crash: the trainer document, its tensors, the weights.
type Saved = (
    String,
    Vec<(String, Tensor<f32>)>,
    Vec<finetune_nn::StateEntry<f32>>,
);

#[test]
fn an_interrupted_run_resumes_to_identical_weights() {
    let (train, val) = digits(20);
    let cfg = TrainConfig {
        schedule: Schedule::one_cycle(),
        optimizer: OptimizerKind::adamw(),
        weight_decay: 0.01,
        ..quick(4)
    };
    let fresh = || {
        let mut net = cnn(9);
        let groups = ParamGroups::by_layer(&net);
        freeze_to(&mut net, &groups, 1, BnPolicy::FreezeAll).unwrap();
        net
    };
    let mut straight = fresh();
    Trainer::new(&straight, cfg.clone())
        .unwrap()
        .fit(&mut straight, &train, &val, None)
        .unwrap();

    // the same run "crashes" after its epoch-2 checkpoint; only the checkpoint survives
    let mut first = fresh();
    let mut saved: Option<Saved> = None;
    let mut trainer = Trainer::new(&first, cfg.clone()).unwrap();
    let hook = Box::new(|net: &mut Sequential<f32>, t: &Trainer| {
        if t.progress.epoch == 2 {
            let ckpt = TrainerState::capture(t, net);
            saved = Some((ckpt.to_json(), ckpt.tensors, net.state_dict()));
            return Err(TrainError::Config("simulated crash".into()));
        }
        Ok(())
    });
    assert!(trainer.fit(&mut first, &train, &val, Some(hook)).is_err());
    drop((trainer, first));
    let (json, tensors, weights) = saved.unwrap();

    // a new process: fresh model, load weights, restore the trainer, continue
    let mut resumed = cnn(123);
    for e in weights {
        resumed.set_tensor(&e.name, e.value).unwrap();
    }
    let mut trainer = TrainerState::from_parts(&json, tensors)
        .unwrap()
        .restore(&mut resumed)
        .unwrap();
    trainer.fit(&mut resumed, &train, &val, None).unwrap();
    assert_eq!(trainer.history.epochs.len(), 4);
    for (a, b) in straight.state_dict().iter().zip(resumed.state_dict()) {
        assert_eq!(a.value, b.value, "{} differs after resuming", a.name);
    }
}

#[test]
fn lr_find_restores_the_weights_and_suggests_a_rate() {
    let (train, _) = digits(20);
    let mut net = cnn(10);
    let before = net.state_dict();
    let r = lr_find(
        &mut net,
        &train,
        OptimizerKind::adam(),
        &LrFindOptions {
            num_iter: 60,
            batch_size: 16,
            ..Default::default()
        },
    )
    .unwrap();
    for (a, b) in before.iter().zip(net.state_dict()) {
        assert_eq!(a.value, b.value, "{} not restored", a.name);
    }
    assert!(r.diverged, "a sweep to lr=10 should diverge");
    assert!(r.lrs.len() <= 60 && r.lrs.len() == r.losses.len());
    assert!(
        r.steepest > 1e-6 && r.steepest < 1.0,
        "steepest {}",
        r.steepest
    );
    assert!(r.min_div_10 < r.lrs[r.lrs.len() - 1]);
}

#[test]
fn fine_tune_trains_the_head_then_everything_with_discriminative_rates() {
    let (train, val) = digits(20);
    let mut net = cnn(11);
    let mut trainer = Trainer::new(
        &net,
        TrainConfig {
            batch_size: 32,
            seed: 3,
            ..Default::default()
        },
    )
    .unwrap()
    .with_observer(Box::new(Collect::default()));
    trainer
        .fine_tune(
            &mut net,
            &train,
            &val,
            FineTune {
                frozen_epochs: 1,
                epochs: 3,
                base_lr: 1e-2,
                ..Default::default()
            },
            None,
        )
        .unwrap();
    let phases: Vec<(&str, usize)> = trainer
        .history
        .epochs
        .iter()
        .map(|e| (e.phase.as_str(), e.trainable_params))
        .collect();
    assert_eq!(
        phases,
        vec![
            ("frozen", 330),
            ("unfrozen", 4554),
            ("unfrozen", 4554),
            ("unfrozen", 4554)
        ]
    );
    let losses: Vec<f64> = trainer
        .history
        .epochs
        .iter()
        .map(|e| e.train_loss)
        .collect();
    assert!(
        losses[3] < losses[1],
        "training loss should fall in the unfrozen phase: {losses:?}"
    );
}

#[test]
fn bad_configurations_and_data_are_clear_errors() {
    let (train, val) = digits(10);
    let net = cnn(12);
    assert!(
        Trainer::new(
            &net,
            TrainConfig {
                batch_size: 0,
                ..quick(1)
            }
        )
        .is_err()
    );
    assert!(
        Trainer::new(
            &net,
            TrainConfig {
                label_smoothing: 1.5,
                ..quick(1)
            }
        )
        .is_err()
    );
    assert!(
        Trainer::new(
            &net,
            TrainConfig {
                lr: LrSpec::Fixed(-1.0),
                ..quick(1)
            }
        )
        .is_err()
    );
    let empty = ImageSource::new(val.data.subset(&[]).unwrap(), val.normalization.clone());
    let mut net = cnn(12);
    let e = Trainer::new(&net, quick(1))
        .unwrap()
        .fit(&mut net, &train, &empty, None)
        .unwrap_err();
    assert_eq!(e.to_string(), "the validation set is empty");
}

#[test]
fn memorising_a_tiny_set_raises_one_overfitting_warning() {
    let (train, val) = digits(4);
    let mut net = cnn(13);
    let mut trainer = Trainer::new(
        &net,
        TrainConfig {
            lr: LrSpec::Fixed(1e-2),
            batch_size: 8,
            ..quick(40)
        },
    )
    .unwrap()
    .with_observer(Box::new(Collect::default()));
    trainer.fit(&mut net, &train, &val, None).unwrap();
    let h = &trainer.history;
    assert!(
        h.epochs.last().unwrap().train_accuracy > 0.9,
        "the training set should be memorised"
    );
    assert_eq!(h.warnings.len(), 1, "{:?}", h.warnings);
    assert!(
        h.warnings[0].starts_with("overfitting from epoch"),
        "{}",
        h.warnings[0]
    );
}
