//! A model summary: every parameter with its shape, count and trainable flag.

use std::fmt;

/// One parameter in a [`Summary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    pub name: String,
    pub shape: Vec<usize>,
    pub count: usize,
    pub trainable: bool,
}

/// The parameters of a model and their totals; `Display` prints a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub model: String,
    pub rows: Vec<SummaryRow>,
    pub total: usize,
    pub trainable: usize,
    pub frozen: usize,
}

impl Summary {
    /// Totals computed from the rows.
    pub fn new(model: String, rows: Vec<SummaryRow>) -> Self {
        let total = rows.iter().map(|r| r.count).sum();
        let trainable = rows.iter().filter(|r| r.trainable).map(|r| r.count).sum();
        Summary {
            model,
            rows,
            total,
            trainable,
            frozen: total - trainable,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self
            .rows
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(4)
            .max(9);
        writeln!(f, "{}", self.model)?;
        writeln!(
            f,
            "{:<w$}  {:<18} {:>12}  trainable",
            "parameter", "shape", "count"
        )?;
        for r in &self.rows {
            let shape = format!("{:?}", r.shape);
            writeln!(
                f,
                "{:<w$}  {shape:<18} {:>12}  {}",
                r.name,
                r.count,
                if r.trainable { "yes" } else { "frozen" }
            )?;
        }
        write!(
            f,
            "total {} parameters: {} trainable, {} frozen",
            self.total, self.trainable, self.frozen
        )
    }
}
