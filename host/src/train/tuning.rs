//! Fine-tuning controls over a run: the [`TuneSpec`] the backbone gets in each epoch (the
//! recipe's freeze rules until `model.unfreeze_epoch` epochs are done, none after), applied
//! through the backbone plugin (ABI 1.3) whenever it changes. The spec depends on the epoch
//! alone, so a resumed run gets the same one as the run it continues.

use clshost_plugin_api::{TuneReport, TuneSpec};

use crate::registry::{Backbone, ComponentError};

/// A run's fine-tuning controls and which of their two forms the backbone has now.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    spec: TuneSpec,
    unfreeze_epoch: Option<u32>,
    /// Whether the backbone has the unfrozen form (`None` before the first application).
    applied: Option<bool>,
}

impl Tuning {
    /// The controls `spec`, whose freeze rules stop applying once `unfreeze_epoch` epochs are
    /// done (never without it).
    pub fn new(spec: TuneSpec, unfreeze_epoch: Option<u32>) -> Tuning {
        Tuning {
            spec,
            unfreeze_epoch,
            applied: None,
        }
    }

    /// Whether the freeze rules are lifted in `epoch` (counted from 0).
    fn unfrozen(&self, epoch: u32) -> bool {
        self.unfreeze_epoch.is_some_and(|u| epoch >= u)
    }

    /// The spec for `epoch` (counted from 0).
    pub fn spec_at(&self, epoch: u32) -> TuneSpec {
        let mut spec = self.spec.clone();
        if self.unfrozen(epoch) {
            spec.freeze = Default::default();
        }
        spec
    }

    /// Gives `backbone` the spec for `epoch` unless it already has it; the plugin's report
    /// when it was applied.
    pub fn apply(
        &mut self,
        backbone: &mut Backbone,
        epoch: u32,
    ) -> Result<Option<TuneReport>, ComponentError> {
        let unfrozen = self.unfrozen(epoch);
        if self.applied == Some(unfrozen) {
            return Ok(None);
        }
        let report = backbone.tune(&self.spec_at(epoch))?;
        self.applied = Some(unfrozen);
        Ok(Some(report))
    }
}

/// One line on what a [`TuneReport`] selected.
pub fn describe(report: &TuneReport) -> String {
    let mut line = format!(
        "{} parameter tensors train ({} elements), {} frozen",
        report.trainable, report.trainable_elements, report.frozen
    );
    if !report.group_sizes.is_empty() {
        let sizes: Vec<String> = report.group_sizes.iter().map(u64::to_string).collect();
        line += &format!("; parameter groups of {} tensors", sizes.join(", "));
    }
    if report.layers > 0 {
        line += &format!("; layer-wise decay over {} layers", report.layers);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_freeze_rules_drop_from_the_unfreeze_epoch_on() {
        let spec = TuneSpec {
            freeze: vec!["*".into(), "!fc.*".into()].into(),
            freeze_norm_stats: true,
            ..TuneSpec::default()
        };
        let tuning = Tuning::new(spec.clone(), Some(2));
        assert_eq!(tuning.spec_at(0), spec);
        assert_eq!(tuning.spec_at(1), spec);
        let later = tuning.spec_at(2);
        assert!(later.freeze.is_empty());
        assert!(later.freeze_norm_stats);
        assert_eq!(Tuning::new(spec.clone(), None).spec_at(50), spec);
    }

    #[test]
    fn the_report_reads_as_one_line() {
        let report = TuneReport {
            frozen: 60,
            trainable: 2,
            trainable_elements: 2052,
            group_sizes: vec![2].into(),
            layers: 0,
        };
        assert_eq!(
            describe(&report),
            "2 parameter tensors train (2052 elements), 60 frozen; parameter groups of 2 tensors"
        );
    }
}
