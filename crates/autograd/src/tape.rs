//! The tape: an arena of recorded nodes, walked in reverse by [`Tape::backward`].
//!
//! A forward pass appends one [`Node`] per operation. A node remembers its
//! op name, the [`Var`]s it read, the value it produced and — only if some
//! input needs a gradient — a boxed gradient rule ([`Backward`]). Handles are
//! plain indices, so there is no reference-counted graph and no topological
//! sort: creation order already is a valid order, and backward walks it from
//! the end.
//!
//! Two rules make frozen layers free:
//! * a node whose inputs need no gradient stores no gradient rule (and the op
//!   may skip saving anything for backward);
//! * backward only runs the rules of nodes that received a gradient, so a
//!   frozen prefix of a network is never visited.

use std::fmt;

use finetune_tensor::{Float, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::error::{AutogradError, Result};

/// A handle to a value recorded on a [`Tape`]: an index into its arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var(pub(crate) u32);

impl Var {
    /// The position of this value on its tape (as printed by the tape).
    pub fn id(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// What a gradient rule gets to work with.
pub struct BackwardContext<'a, T: Float> {
    /// The gradient of the loss with respect to this node's output.
    pub grad_output: &'a Tensor<T>,
    /// This node's output value.
    pub output: &'a Tensor<T>,
    /// The values of this node's inputs, in order.
    pub inputs: Vec<&'a Tensor<T>>,
    /// For each input, whether it needs a gradient. A rule should skip the
    /// work for inputs that do not (return `None` for them).
    pub needs_grad: Vec<bool>,
}

/// Gradients for a node's inputs, in input order (`None` where not needed).
pub type InputGrads<T> = Vec<Option<Tensor<T>>>;

/// A gradient rule: from the output gradient to the input gradients.
///
/// Implemented for closures, so an op states its rule right beside its forward:
/// ```
/// # use finetune_autograd::{Tape, Result};
/// # let mut tape = Tape::<f64>::new();
/// # let x = tape.leaf(finetune_tensor::Tensor::ones(&[2]));
/// // y = 3x, dy/dx = 3
/// let value = tape.value(x)?.map(|v| 3.0 * v);
/// let y = tape.record("triple", &[x], value, |ctx| Ok(vec![Some(ctx.grad_output.map(|g| 3.0 * g))]));
/// # Ok::<(), finetune_autograd::AutogradError>(())
/// ```
pub trait Backward<T: Float>: Send {
    /// Computes the input gradients.
    fn backward(&self, ctx: &BackwardContext<'_, T>) -> Result<InputGrads<T>>;
}

impl<T: Float, F> Backward<T> for F
where
    F: Fn(&BackwardContext<'_, T>) -> Result<InputGrads<T>> + Send,
{
    fn backward(&self, ctx: &BackwardContext<'_, T>) -> Result<InputGrads<T>> {
        self(ctx)
    }
}

/// One recorded operation.
pub struct Node<T: Float> {
    op: &'static str,
    inputs: Vec<Var>,
    value: Tensor<T>,
    requires_grad: bool,
    backward: Option<Box<dyn Backward<T>>>,
}

impl<T: Float> Node<T> {
    /// The op's name (`"conv2d"`, `"leaf"`, ...).
    pub fn op(&self) -> &'static str {
        self.op
    }
    /// The inputs it read.
    pub fn inputs(&self) -> &[Var] {
        &self.inputs
    }
    /// The value it produced.
    pub fn value(&self) -> &Tensor<T> {
        &self.value
    }
    /// Whether a gradient flows to or through it.
    pub fn requires_grad(&self) -> bool {
        self.requires_grad
    }
    /// Whether it stored a gradient rule (false for leaves and constants-only ops).
    pub fn has_backward(&self) -> bool {
        self.backward.is_some()
    }
}

/// The autograd tape. Create one per training step and drop it afterwards.
pub struct Tape<T: Float = f32> {
    id: u64,
    nodes: Vec<Node<T>>,
    grad_enabled: bool,
    rng: StdRng,
}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Tape<T> {
    /// An empty tape whose random source (for dropout) is seeded with 0.
    pub fn new() -> Self {
        Self::with_seed(0)
    }

    /// An empty tape whose random source is seeded with `seed`.
    pub fn with_seed(seed: u64) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Tape {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            nodes: Vec::new(),
            grad_enabled: true,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A number unique to this tape in the process, so that a parameter can
    /// tell whether it has already been entered on it (weight sharing).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The tape's random source (dropout masks draw from it).
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// Turns gradient recording on or off (off: like `torch.no_grad()`).
    pub fn set_grad_enabled(&mut self, enabled: bool) {
        self.grad_enabled = enabled;
    }

    /// Whether ops currently record gradient rules.
    pub fn grad_enabled(&self) -> bool {
        self.grad_enabled
    }

    /// Runs `f` with gradient recording off, then restores the previous state.
    pub fn no_grad<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let before = self.grad_enabled;
        self.grad_enabled = false;
        let r = f(self);
        self.grad_enabled = before;
        r
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Forgets every node but keeps the arena's capacity (and the random source).
    /// The tape gets a new id: handles from before the clear are stale.
    pub fn clear(&mut self) {
        self.nodes.clear();
        let fresh = Tape::<T>::with_seed(0);
        self.id = fresh.id;
    }

    /// The recorded nodes, in creation order.
    pub fn nodes(&self) -> &[Node<T>] {
        &self.nodes
    }

    /// A value that needs a gradient (an input or a trainable parameter).
    pub fn leaf(&mut self, value: Tensor<T>) -> Var {
        self.push("leaf", Vec::new(), value, true, None)
    }

    /// A value that needs no gradient (data, a frozen parameter).
    pub fn constant(&mut self, value: Tensor<T>) -> Var {
        self.push("constant", Vec::new(), value, false, None)
    }

    /// A new constant with the value of `v`: gradients stop here
    /// (`tensor.detach()`; used for truncated backpropagation through time).
    pub fn detach(&mut self, v: Var) -> Result<Var> {
        let value = self.value(v)?.clone();
        Ok(self.push("detach", vec![v], value, false, None))
    }

    /// The value of a recorded node.
    pub fn value(&self, v: Var) -> Result<&Tensor<T>> {
        Ok(&self.node(v)?.value)
    }

    /// The shape of a recorded value.
    pub fn shape(&self, v: Var) -> Result<&[usize]> {
        Ok(self.node(v)?.value.shape())
    }

    /// Whether a gradient will flow to `v`'s inputs through it.
    pub fn requires_grad(&self, v: Var) -> Result<bool> {
        Ok(self.node(v)?.requires_grad)
    }

    /// True when recording is on and at least one of `inputs` needs a gradient:
    /// ops call this to skip saving tensors that backward would never use.
    pub fn needs_grad(&self, inputs: &[Var]) -> bool {
        self.grad_enabled
            && inputs
                .iter()
                .any(|v| self.nodes.get(v.id()).is_some_and(|n| n.requires_grad))
    }

    pub(crate) fn node(&self, v: Var) -> Result<&Node<T>> {
        self.nodes.get(v.id()).ok_or(AutogradError::UnknownVar {
            var: v.id(),
            len: self.nodes.len(),
        })
    }

    /// Records an op's output. The gradient rule is kept only if some input
    /// needs a gradient (and recording is on); otherwise it is dropped here
    /// and the node costs nothing in backward.
    ///
    /// This is public so that other crates (the recurrent layers, for one)
    /// can define fused ops with their own gradient rules.
    pub fn record<F>(
        &mut self,
        op: &'static str,
        inputs: &[Var],
        value: Tensor<T>,
        backward: F,
    ) -> Var
    where
        F: Fn(&BackwardContext<'_, T>) -> Result<InputGrads<T>> + Send + 'static,
    {
        self.record_rule(op, inputs, value, backward)
    }

    /// [`Tape::record`] for a gradient rule that is a type of its own
    /// (a struct implementing [`Backward`]) rather than a closure.
    pub fn record_rule(
        &mut self,
        op: &'static str,
        inputs: &[Var],
        value: Tensor<T>,
        backward: impl Backward<T> + 'static,
    ) -> Var {
        let requires_grad = self.needs_grad(inputs);
        let rule = requires_grad.then(|| Box::new(backward) as Box<dyn Backward<T>>);
        self.push(op, inputs.to_vec(), value, requires_grad, rule)
    }

    fn push(
        &mut self,
        op: &'static str,
        inputs: Vec<Var>,
        value: Tensor<T>,
        requires_grad: bool,
        backward: Option<Box<dyn Backward<T>>>,
    ) -> Var {
        let id = u32::try_from(self.nodes.len()).expect("a tape holds fewer than 2^32 nodes");
        self.nodes.push(Node {
            op,
            inputs,
            value,
            requires_grad,
            backward,
        });
        Var(id)
    }

    /// Backpropagates from a one-element `loss` (seeded with 1).
    pub fn backward(&self, loss: Var) -> Result<Gradients<T>> {
        let value = self.value(loss)?;
        if value.len() != 1 {
            return Err(AutogradError::NotScalar {
                shape: value.shape().to_vec(),
            });
        }
        self.backward_with(loss, Tensor::ones(value.shape()))
    }

    /// Backpropagates from `output` with an explicit output gradient
    /// (a vector-Jacobian product; `tensor.backward(gradient)` in PyTorch).
    pub fn backward_with(&self, output: Var, grad_output: Tensor<T>) -> Result<Gradients<T>> {
        let out = self.node(output)?;
        if out.value.shape() != grad_output.shape() {
            return Err(AutogradError::GradientShape {
                op: "backward",
                expected: out.value.shape().to_vec(),
                actual: grad_output.shape().to_vec(),
            });
        }
        let mut grads: Vec<Option<Tensor<T>>> = vec![None; output.id() + 1];
        let mut executed = 0;
        if out.requires_grad {
            grads[output.id()] = Some(grad_output);
        }
        for id in (0..=output.id()).rev() {
            let node = &self.nodes[id];
            let Some(rule) = &node.backward else { continue };
            let Some(grad) = grads[id].take() else {
                continue;
            };
            let ctx = BackwardContext {
                grad_output: &grad,
                output: &node.value,
                inputs: node
                    .inputs
                    .iter()
                    .map(|v| &self.nodes[v.id()].value)
                    .collect(),
                needs_grad: node
                    .inputs
                    .iter()
                    .map(|v| self.nodes[v.id()].requires_grad)
                    .collect(),
            };
            let input_grads = rule.backward(&ctx)?;
            executed += 1;
            for (k, (input, g)) in node.inputs.iter().zip(input_grads).enumerate() {
                let Some(g) = g else { continue };
                if !ctx.needs_grad[k] {
                    continue;
                }
                let expected = self.nodes[input.id()].value.shape();
                if g.shape() != expected {
                    return Err(AutogradError::GradientShape {
                        op: node.op,
                        expected: expected.to_vec(),
                        actual: g.shape().to_vec(),
                    });
                }
                accumulate(&mut grads[input.id()], g);
            }
        }
        Ok(Gradients {
            grads,
            backward_ops: executed,
        })
    }
}

/// `slot += g`, taking `g` as is when the slot is empty.
fn accumulate<T: Float>(slot: &mut Option<Tensor<T>>, g: Tensor<T>) {
    match slot {
        None => *slot = Some(g),
        Some(acc) => {
            let acc = acc.as_mut_slice();
            finetune_tensor::parallel::for_each_chunk_mut(acc, 1 << 14, |i, chunk| {
                let src = &g.as_slice()[i << 14..];
                for (a, &b) in chunk.iter_mut().zip(src) {
                    *a += b;
                }
            });
        }
    }
}

/// The gradients one backward pass produced.
///
/// Gradients of leaves are kept; those of intermediate nodes are released as
/// soon as their rule has run (like PyTorch's non-leaf tensors).
pub struct Gradients<T: Float> {
    grads: Vec<Option<Tensor<T>>>,
    backward_ops: usize,
}

impl<T: Float> Gradients<T> {
    /// The gradient of `v`, if one reached it.
    pub fn get(&self, v: Var) -> Option<&Tensor<T>> {
        self.grads.get(v.id()).and_then(Option::as_ref)
    }

    /// Moves the gradient of `v` out (no copy).
    pub fn take(&mut self, v: Var) -> Option<Tensor<T>> {
        self.grads.get_mut(v.id()).and_then(Option::take)
    }

    /// How many gradient rules ran: the backward work actually done.
    pub fn backward_ops(&self) -> usize {
        self.backward_ops
    }
}

impl<T: Float> fmt::Display for Tape<T> {
    /// One line per node: `%id = op(%inputs) shape`, marking nodes with a
    /// gradient rule. This is the printable tape of a forward pass.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (id, n) in self.nodes.iter().enumerate() {
            let inputs: Vec<String> = n.inputs.iter().map(|v| v.to_string()).collect();
            let mark = match (n.requires_grad, n.backward.is_some()) {
                (_, true) => "  [grad rule]",
                (true, false) => "  [needs grad]",
                _ => "",
            };
            writeln!(
                f,
                "%{id:<4} = {}({}) {:?}{mark}",
                n.op,
                inputs.join(", "),
                n.value.shape()
            )?;
        }
        Ok(())
    }
}

// A tape moves to rayon's pool with the forward pass or training step that
// records it (`Sequential::forward_range`, `finetune_train::step`).
const _: () = {
    fn send<S: Send>() {}
    let _ = send::<Tape<f32>>;
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_record_no_rule_and_cost_nothing() {
        let mut tape = Tape::<f64>::new();
        let a = tape.constant(Tensor::ones(&[3]));
        let b = tape.constant(Tensor::ones(&[3]));
        let c = tape.add(a, b).unwrap();
        assert!(!tape.requires_grad(c).unwrap());
        assert!(!tape.nodes()[c.id()].has_backward());
        let loss = tape.sum_all(c).unwrap();
        let g = tape.backward(loss).unwrap();
        assert_eq!(g.backward_ops(), 0);
    }

    #[test]
    fn backward_skips_a_frozen_prefix() {
        // frozen: x -> tanh -> tanh -> tanh ; trainable w joins at the end.
        let mut tape = Tape::<f64>::new();
        let x = tape.constant(Tensor::ones(&[4]));
        let mut h = x;
        for _ in 0..3 {
            h = tape.tanh(h).unwrap();
        }
        let w = tape.leaf(Tensor::full(&[4], 2.0));
        let y = tape.mul(h, w).unwrap();
        let loss = tape.sum_all(y).unwrap();
        let g = tape.backward(loss).unwrap();
        // only mul and sum_all ran; the three tanh nodes were never visited
        assert_eq!(g.backward_ops(), 2);
        assert!(g.get(w).is_some());
        assert!(g.get(x).is_none());
    }

    #[test]
    fn gradients_accumulate_over_fan_out() {
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::full(&[2], 3.0));
        let y = tape.mul(x, x).unwrap(); // x^2, reads x twice
        let z = tape.add(y, x).unwrap(); // + x
        let loss = tape.sum_all(z).unwrap();
        let g = tape.backward(loss).unwrap();
        assert_eq!(g.get(x).unwrap().as_slice(), &[7.0, 7.0]); // 2x + 1
    }

    #[test]
    fn no_grad_records_no_rules() {
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::ones(&[2]));
        let y = tape.no_grad(|t| t.exp(x)).unwrap();
        assert!(!tape.requires_grad(y).unwrap());
        assert!(tape.grad_enabled());
    }

    #[test]
    fn non_scalar_loss_and_unknown_var_are_errors() {
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::ones(&[2]));
        assert!(matches!(
            tape.backward(x),
            Err(AutogradError::NotScalar { .. })
        ));
        assert!(matches!(
            tape.value(Var(99)),
            Err(AutogradError::UnknownVar { .. })
        ));
    }

    #[test]
    fn tape_prints_ops_inputs_and_shapes() {
        let mut tape = Tape::<f32>::new();
        let x = tape.constant(Tensor::ones(&[2, 3]));
        let w = tape.leaf(Tensor::ones(&[4, 3]));
        let y = tape.linear(x, w, None).unwrap();
        let _ = tape.relu(y).unwrap();
        let text = tape.to_string();
        assert!(
            text.contains("%2    = linear(%0, %1) [2, 4]  [grad rule]"),
            "{text}"
        );
        assert!(
            text.contains("%3    = relu(%2) [2, 4]  [grad rule]"),
            "{text}"
        );
        assert!(text.contains("%0    = constant() [2, 3]\n"), "{text}");
    }
}
