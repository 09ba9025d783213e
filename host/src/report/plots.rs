//! PNG plots of a run, drawn with `plotters` into a buffer and written into `RUN_DIR/plots/`
//! after every evaluation:
//!
//! - `loss.png`: training and validation loss per epoch (and the EMA validation loss);
//! - `accuracy.png`: every `topK` column and its `ema_` twin per epoch, when there is one;
//! - `metrics.png`: every other scalar a metric reports (whichever plugin it came from) and its
//!   `ema_` twin per epoch, when there is one;
//! - `lr.png`: the learning rate of every iteration of the whole schedule, the part trained
//!   so far in colour and the rest in grey;
//! - `confusion_matrix.png` (and `confusion_matrix_ema.png` with EMA on): the latest
//!   evaluation's confusion matrix, when a metric reports one: counts in the cells, colour by
//!   the share of the true class's row, class names on the axes (up to
//!   [`MAX_NAMED_CLASSES`] classes).
//!
//! Text uses DejaVu Sans embedded in the binary (the `dejavu` crate, through plotters'
//! `ab_glyph` backend), so plots need no system fonts. Every file is encoded as PNG by `image`
//! and written with [`atomic_write`]. Plots are derived from `metrics.csv` and the metric
//! reports: a plot that cannot be drawn or written is a warning (see the trainer), never the
//! end of a run.

use std::io::Cursor;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

use super::history::Row;
use crate::rundir::{WriteError, at, atomic_write};
use crate::train::Schedule;

/// Width and height of the curve plots, in pixels.
pub const CURVE_SIZE: (u32, u32) = (800, 500);
/// Width and height of the confusion-matrix plot, in pixels.
pub const MATRIX_SIZE: (u32, u32) = (900, 900);
/// Above this many classes the confusion matrix has no class names on its axes.
pub const MAX_NAMED_CLASSES: usize = 40;
/// The learning-rate curve is sampled at this many iterations at most.
const LR_POINTS: u64 = 2000;
const FONT: &str = "sans-serif";

/// A plot that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The embedded font could not be loaded.
    #[error("the plot font could not be loaded")]
    Font,
    /// Drawing or encoding failed.
    #[error("cannot draw {name}: {reason}")]
    Draw {
        /// The plot's file name.
        name: String,
        /// What failed.
        reason: String,
    },
    /// The file could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// A named line of points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// `(x, y)` points; non-finite ones are left out when drawn.
    pub points: Vec<(f64, f64)>,
}

/// A confusion matrix to draw.
#[derive(Debug, Clone, Copy)]
pub struct Confusion<'a> {
    /// The class names, in label order.
    pub classes: &'a [String],
    /// Row-major counts: rows are true classes, columns predicted ones.
    pub counts: &'a [f64],
}

/// What the plots of a run are made from.
pub struct PlotInput<'a> {
    /// The metrics history.
    pub history: &'a [Row],
    /// The learning-rate schedule.
    pub schedule: &'a Schedule,
    /// Iterations trained so far.
    pub iterations_done: u64,
    /// The epoch (from 1) of the evaluation the confusion matrices come from.
    pub epoch: u32,
    /// The raw weights' confusion matrix, when a metric reports one.
    pub confusion: Option<Confusion<'a>>,
    /// The EMA weights' confusion matrix, when EMA is on and a metric reports one.
    pub ema_confusion: Option<Confusion<'a>>,
}

fn font() -> Result<(), PlotError> {
    static LOADED: OnceLock<bool> = OnceLock::new();
    let ok = *LOADED
        .get_or_init(|| register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok());
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

/// Writes every plot `input` allows into `dir` (created if needed).
pub fn write_all(dir: &Path, input: &PlotInput) -> Result<(), PlotError> {
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let mut files = vec![
        (
            "loss.png",
            curves(&Axes::epochs("Loss", "loss"), &loss_series(input.history))?,
        ),
        ("lr.png", lr_plot(input.schedule, input.iterations_done)?),
    ];
    let accuracy = accuracy_series(input.history);
    if !accuracy.is_empty() {
        let axes = Axes {
            y_range: Some(0.0..1.0),
            legend: SeriesLabelPosition::LowerRight,
            ..Axes::epochs("Accuracy", "accuracy")
        };
        files.push(("accuracy.png", curves(&axes, &accuracy)?));
    }
    let metrics = metric_series(input.history);
    if !metrics.is_empty() {
        files.push((
            "metrics.png",
            curves(&Axes::epochs("Metrics", "value"), &metrics)?,
        ));
    }
    for (name, matrix, weights) in [
        ("confusion_matrix.png", input.confusion, "raw"),
        ("confusion_matrix_ema.png", input.ema_confusion, "EMA"),
    ] {
        if let Some(m) = matrix {
            let title = format!(
                "Confusion matrix, epoch {} ({weights} weights)",
                input.epoch
            );
            files.push((name, confusion_matrix(&title, m)?));
        }
    }
    for (name, png) in files {
        atomic_write(&dir.join(name), &png)?;
    }
    Ok(())
}

/// Training loss, validation loss and EMA validation loss per epoch.
pub fn loss_series(history: &[Row]) -> Vec<Series> {
    let mut out = vec![Series {
        name: "train loss".into(),
        points: history
            .iter()
            .map(|r| (f64::from(r.epoch), r.train_loss))
            .collect(),
    }];
    for (column, name) in [("val_loss", "val loss"), ("ema_val_loss", "EMA val loss")] {
        out.extend(column_series(history, column, name));
    }
    out
}

/// Every top-k accuracy column (`top1`, `top5`, ...) and its EMA twin, per epoch.
pub fn accuracy_series(history: &[Row]) -> Vec<Series> {
    value_series(history, is_topk)
}

/// Every evaluation column neither [`loss_series`] nor [`accuracy_series`] draws (each other
/// metric scalar, and its EMA twin), per epoch.
pub fn metric_series(history: &[Row]) -> Vec<Series> {
    value_series(history, |name| {
        !is_topk(name) && !matches!(name, "val_loss" | "ema_val_loss")
    })
}

/// Whether the column `name` is a top-k accuracy or its EMA twin.
fn is_topk(name: &str) -> bool {
    let k = name.strip_prefix("ema_").unwrap_or(name);
    k.strip_prefix("top")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The evaluation columns of `history` that `keep` selects, each as a series named after it.
fn value_series(history: &[Row], keep: impl Fn(&str) -> bool) -> Vec<Series> {
    let Some(first) = history.first() else {
        return Vec::new();
    };
    first
        .values
        .iter()
        .filter(|(name, _)| keep(name))
        .filter_map(|(name, _)| column_series(history, name, name))
        .collect()
}

/// The column `column` of `history` as a series called `name`, when any row has it.
fn column_series(history: &[Row], column: &str, name: &str) -> Option<Series> {
    let points: Vec<(f64, f64)> = history
        .iter()
        .filter(|r| r.values.iter().any(|(n, _)| n == column))
        .map(|r| (f64::from(r.epoch), r.get(column).unwrap_or(f64::NAN)))
        .collect();
    (!points.is_empty()).then(|| Series {
        name: name.into(),
        points,
    })
}

/// The learning rate of every iteration (1-based, as TensorBoard's steps), sampled at up to
/// `LR_POINTS` (2000) iterations; the last iteration is always in.
pub fn lr_points(schedule: &Schedule) -> Vec<(f64, f64)> {
    let total = schedule.total_iters();
    let stride = total.div_ceil(LR_POINTS).max(1);
    let mut iters: Vec<u64> = (0..total).step_by(stride as usize).collect();
    if total > 0 && iters.last() != Some(&(total - 1)) {
        iters.push(total - 1);
    }
    iters
        .into_iter()
        .map(|i| ((i + 1) as f64, schedule.lr(i)))
        .collect()
}

fn lr_plot(schedule: &Schedule, done: u64) -> Result<Vec<u8>, PlotError> {
    let points = lr_points(schedule);
    let (trained, rest): (Vec<_>, Vec<_>) = points.iter().partition(|(x, _)| *x <= done as f64);
    let mut series = vec![Series {
        name: "trained".into(),
        points: trained,
    }];
    if !rest.is_empty() {
        // The planned part starts where the trained one ends, so the line is unbroken.
        let start = series[0].points.last().copied();
        series.push(Series {
            name: "planned".into(),
            points: start.into_iter().chain(rest).collect(),
        });
    }
    let axes = Axes {
        x_desc: "iteration",
        ..Axes::epochs("Learning rate", "learning rate")
    };
    curves(&axes, &series)
}

/// A tick label: whole numbers plain, others with up to 4 decimals, very large or small
/// ones in scientific notation.
fn tick(v: f64) -> String {
    let a = v.abs();
    if v.fract() == 0.0 && a < 1e9 {
        format!("{v:.0}")
    } else if (1e-3..1e5).contains(&a) {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.2e}")
    }
}

/// Titles and layout of a line chart.
#[derive(Debug, Clone)]
pub struct Axes {
    /// The caption.
    pub title: &'static str,
    /// The x axis' title.
    pub x_desc: &'static str,
    /// The y axis' title.
    pub y_desc: &'static str,
    /// A fixed y range (padded slightly), instead of one fitted to the data.
    pub y_range: Option<Range<f64>>,
    /// Where the legend goes.
    pub legend: SeriesLabelPosition,
}

impl Axes {
    /// Per-epoch axes, y fitted to the data, legend top right.
    pub fn epochs(title: &'static str, y_desc: &'static str) -> Axes {
        Axes {
            title,
            x_desc: "epoch",
            y_desc,
            y_range: None,
            legend: SeriesLabelPosition::UpperRight,
        }
    }
}

/// `values` padded into a range that is never empty.
fn axis(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.05)
        .max(lo.abs().max(hi.abs()) * 0.05)
        .max(1e-9);
    (lo - pad)..(hi + pad)
}

/// Draws into a white `size` canvas and encodes it as PNG.
fn render(
    name: &str,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
) -> Result<Vec<u8>, PlotError> {
    font()?;
    let fail = |reason: String| PlotError::Draw {
        name: name.into(),
        reason,
    };
    let mut buf = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        draw(&root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let image =
        image::RgbImage::from_raw(size.0, size.1, buf).ok_or_else(|| fail("buffer size".into()))?;
    let mut png = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| fail(e.to_string()))?;
    Ok(png)
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A line chart of `series` with a legend, as PNG; x tick labels only at whole numbers.
pub fn curves(axes: &Axes, series: &[Series]) -> Result<Vec<u8>, PlotError> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let x = axis(all().map(|p| p.0));
    let y = match &axes.y_range {
        Some(r) => axis([r.start, r.end].into_iter()),
        None => axis(all().map(|p| p.1)),
    };
    render(axes.title, CURVE_SIZE, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(axes.title, (FONT, 22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x, y)
            .map_err(text)?;
        chart
            .configure_mesh()
            .x_desc(axes.x_desc)
            .y_desc(axes.y_desc)
            .label_style((FONT, 13))
            .x_label_formatter(&|v| {
                if v.fract() == 0.0 {
                    tick(*v)
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| tick(*v))
            .draw()
            .map_err(text)?;
        for (i, s) in series.iter().enumerate() {
            let color = match s.name.as_str() {
                "planned" => RGBColor(170, 170, 170).to_rgba(),
                _ => Palette99::pick(i).to_rgba(),
            };
            let points: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect();
            let markers = points.len() <= 60;
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(text)?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            if markers {
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(text)?;
            }
        }
        chart
            .configure_series_labels()
            .position(axes.legend.clone())
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(text)
    })
}

/// `name` cut to at most `chars` characters, with `…` when cut.
fn fit(name: &str, chars: usize) -> String {
    if name.chars().count() <= chars {
        return name.into();
    }
    let mut out: String = name.chars().take(chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The heatmap of a confusion matrix, as PNG.
pub fn confusion_matrix(title: &str, m: Confusion) -> Result<Vec<u8>, PlotError> {
    let c = m.classes.len();
    if c == 0 || m.counts.len() != c * c {
        return Err(PlotError::Draw {
            name: title.into(),
            reason: format!("{} values for {c} classes", m.counts.len()),
        });
    }
    let named = c <= MAX_NAMED_CLASSES;
    let label_area = if named { 150 } else { 30 };
    render(title, MATRIX_SIZE, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 22))
            .margin(15)
            .x_label_area_size(label_area)
            .y_label_area_size(label_area)
            .build_cartesian_2d(0f64..c as f64, 0f64..c as f64)
            .map_err(text)?;
        let cell_px = (chart.backend_coord(&(1.0, 0.0)).0 - chart.backend_coord(&(0.0, 0.0)).0)
            .max(1) as usize;
        let font_px = (cell_px as f64 * 0.3).clamp(9.0, 18.0);
        let mut cells = Vec::with_capacity(c * c);
        let mut labels = Vec::new();
        for (r, row) in m.counts.chunks_exact(c).enumerate() {
            // Row 0 (the first true class) at the top.
            let y = (c - 1 - r) as f64;
            let row_sum: f64 = row.iter().sum();
            for (k, &count) in row.iter().enumerate() {
                let share = if row_sum > 0.0 { count / row_sum } else { 0.0 };
                let share = share.clamp(0.0, 1.0);
                let mix = |white: f64, full: f64| (white + (full - white) * share).round() as u8;
                let fill = RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0));
                cells.push(Rectangle::new(
                    [(k as f64, y), (k as f64 + 1.0, y + 1.0)],
                    fill.filled(),
                ));
                if cell_px >= 24 {
                    let ink = if share > 0.5 { &WHITE } else { &BLACK };
                    let style = TextStyle::from((FONT, font_px))
                        .color(ink)
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    let value = if count.fract() == 0.0 {
                        format!("{count:.0}")
                    } else {
                        format!("{count:.2}")
                    };
                    labels.push(Text::new(value, (k as f64 + 0.5, y + 0.5), style));
                }
            }
        }
        chart.draw_series(cells).map_err(text)?;
        chart.draw_series(labels).map_err(text)?;
        let axis_style = |h, v| TextStyle::from((FONT, 13)).pos(Pos::new(h, v));
        if named {
            let chars = (cell_px / 8).clamp(3, 18);
            for (i, name) in m.classes.iter().enumerate() {
                let (x0, y0) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
                root.draw(&Text::new(
                    fit(name, chars),
                    (x0, y0 + 8),
                    axis_style(HPos::Center, VPos::Top),
                ))
                .map_err(text)?;
                let (x1, y1) = chart.backend_coord(&(0.0, (c - 1 - i) as f64 + 0.5));
                root.draw(&Text::new(
                    fit(name, 18),
                    (x1 - 8, y1),
                    axis_style(HPos::Right, VPos::Center),
                ))
                .map_err(text)?;
            }
        }
        let (left, bottom) = chart.backend_coord(&(0.0, 0.0));
        let right = chart.backend_coord(&(c as f64, 0.0)).0;
        root.draw(&Text::new(
            "rows: true class, columns: predicted class, colour: share of the row",
            ((left + right) / 2, bottom + label_area - 20),
            axis_style(HPos::Center, VPos::Center),
        ))
        .map_err(text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::schema::Schedule as ScheduleSpec;

    fn decode(png: &[u8]) -> image::RgbImage {
        image::load_from_memory_with_format(png, image::ImageFormat::Png)
            .unwrap()
            .to_rgb8()
    }

    /// Distinct colours in `img`: a blank or single-colour picture has one or two.
    fn colours(img: &image::RgbImage) -> usize {
        let mut seen: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    fn row(epoch: u32, val: Option<f64>, top1: Option<f64>) -> Row {
        Row {
            epoch,
            train_loss: 1.0 / f64::from(epoch),
            lr: 0.1,
            values: vec![
                ("val_loss".into(), val),
                ("top1".into(), top1),
                ("f1_macro".into(), Some(0.5)),
                ("ema_top1".into(), Some(0.4)),
            ],
            seconds: 1.0,
            images_per_s: 1.0,
        }
    }

    #[test]
    fn series_come_from_the_history_columns() {
        let history = [row(1, Some(0.9), Some(0.5)), row(2, None, Some(0.7))];
        let loss = loss_series(&history);
        assert_eq!(loss.len(), 2);
        assert_eq!(loss[1].name, "val loss");
        assert!(loss[1].points[1].1.is_nan());
        let names: Vec<_> = accuracy_series(&history)
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["top1", "ema_top1"]);
        assert!(accuracy_series(&[]).is_empty());
        let others: Vec<_> = metric_series(&history)
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(others, ["f1_macro"]);
    }

    #[test]
    fn the_lr_curve_is_sampled_and_ends_on_the_last_iteration() {
        let spec = ScheduleSpec::default();
        let schedule = Schedule::new(&spec, 0.1, 32, 90, 10_000);
        let points = lr_points(&schedule);
        assert!(points.len() <= LR_POINTS as usize + 1);
        assert_eq!(points[0].0, 1.0);
        assert_eq!(points.last().unwrap().0, 900_000.0);
        let short = Schedule::new(&spec, 0.1, 32, 2, 3);
        assert_eq!(lr_points(&short).len(), 6);
    }

    #[test]
    fn axes_are_never_empty() {
        assert_eq!(axis([f64::NAN].into_iter()), 0.0..1.0);
        let r = axis([2.0, 2.0].into_iter());
        assert!(r.start < 2.0 && r.end > 2.0);
    }

    #[test]
    fn every_plot_is_a_png_with_content() {
        let dir = tempfile::tempdir().unwrap();
        let history = [row(1, Some(0.9), Some(0.5)), row(2, Some(f64::NAN), None)];
        let schedule = Schedule::new(&ScheduleSpec::default(), 0.1, 32, 2, 5);
        let classes: Vec<String> = ["circle", "a-very-long-class-name-indeed", "square"]
            .map(String::from)
            .into();
        let counts = [3.0, 1.0, 0.0, 0.0, 4.0, 0.0, 2.0, 0.0, 1.0];
        let confusion = Confusion {
            classes: &classes,
            counts: &counts,
        };
        let input = PlotInput {
            history: &history,
            schedule: &schedule,
            iterations_done: 4,
            epoch: 2,
            confusion: Some(confusion),
            ema_confusion: None,
        };
        write_all(dir.path(), &input).unwrap();
        for (name, size) in [
            ("loss.png", CURVE_SIZE),
            ("accuracy.png", CURVE_SIZE),
            ("metrics.png", CURVE_SIZE),
            ("lr.png", CURVE_SIZE),
            ("confusion_matrix.png", MATRIX_SIZE),
        ] {
            let img = decode(&std::fs::read(dir.path().join(name)).unwrap());
            assert_eq!(img.dimensions(), size, "{name}");
            assert!(colours(&img) > 20, "{name} looks blank");
        }
        assert!(!dir.path().join("confusion_matrix_ema.png").exists());
    }

    #[test]
    fn one_epoch_and_many_classes_still_draw() {
        let png = curves(&Axes::epochs("t", "y"), &loss_series(&[row(1, None, None)])).unwrap();
        assert_eq!(decode(&png).dimensions(), CURVE_SIZE);
        let classes: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
        let counts = vec![1.0; 100 * 100];
        let png = confusion_matrix(
            "many",
            Confusion {
                classes: &classes,
                counts: &counts,
            },
        )
        .unwrap();
        assert_eq!(decode(&png).dimensions(), MATRIX_SIZE);
        let bad = confusion_matrix(
            "bad",
            Confusion {
                classes: &classes,
                counts: &[1.0],
            },
        );
        assert!(matches!(bad, Err(PlotError::Draw { .. })));
    }

    #[test]
    fn ticks_read_naturally() {
        assert_eq!(tick(3.0), "3");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(0.0001), "1.00e-4");
        assert_eq!(tick(-12.5), "-12.5");
    }

    #[test]
    fn long_names_are_cut() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }
}
