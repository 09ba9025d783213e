//! Config checks shared by the components: probabilities, ranges, counts and sizes.

use clshost_plugin_api::PluginError;

/// `p` must be a probability.
pub fn probability(field: &str, p: f64) -> Result<(), PluginError> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(PluginError::config(
            field,
            format!("must be in [0, 1], got {p}"),
        ))
    }
}

/// A count must be at least `min`.
pub fn at_least(field: &str, value: u32, min: u32) -> Result<(), PluginError> {
    if value >= min {
        Ok(())
    } else {
        Err(PluginError::config(
            field,
            format!("must be at least {min}"),
        ))
    }
}

/// `(lo, hi)` must be finite, positive and ordered.
pub fn positive_range(field: &str, (lo, hi): (f64, f64)) -> Result<(), PluginError> {
    if lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi {
        Ok(())
    } else {
        Err(PluginError::config(
            field,
            format!("must be positive with min <= max, got ({lo}, {hi})"),
        ))
    }
}

/// An optional `(height, width)` must not be zero.
pub fn size(field: &str, size: Option<(u32, u32)>) -> Result<(), PluginError> {
    match size {
        Some((h, w)) if h == 0 || w == 0 => Err(PluginError::config(
            field,
            format!("height and width must be positive, got ({h}, {w})"),
        )),
        _ => Ok(()),
    }
}

/// The configured size, or the recipe's training input size from the context.
pub fn size_or_context(
    size: Option<(u32, u32)>,
    ctx: &clshost_plugin_api::AugmentContext,
) -> Result<(u32, u32), PluginError> {
    let (h, w) = size.unwrap_or((ctx.input_height, ctx.input_width));
    if h == 0 || w == 0 {
        return Err(PluginError::config(
            "size",
            "not given and the recipe's input size is empty",
        ));
    }
    Ok((h, w))
}
