/// Out-of-sample error of an online model, measured *prequentially*: every observation is first
/// predicted with the model fitted on the observations before it, and only then added to the fit.
///
/// Why prequential rather than the in-sample residual of the current fit: the scheduler uses the
/// estimator's predictions for batches it has not seen yet, so the honest error is the one on
/// unseen data. In-sample residuals of a 4-parameter least-squares fit understate it, most of all
/// with few samples. Only predictions made once the model was fitted from data count (predictions
/// from the prior would keep inflating the error long after the fit converged), and only the most
/// recent `window` of them, so the report follows drift.
struct PrequentialError: Sendable {
    let window: Int
    private var absoluteErrors: [Double] = []
    private var relativeErrors: [Double] = []
    private var next = 0

    init(window: Int) {
        self.window = max(1, window)
    }

    /// Predictions scored so far (capped at `window`).
    var count: Int { absoluteErrors.count }

    /// Records one (prediction, observation) pair, both in the same unit.
    mutating func record(predicted: Double, observed: Double) {
        let error = abs(predicted - observed)
        let relative = error / max(observed, 1e-9)
        if absoluteErrors.count < window {
            absoluteErrors.append(error)
            relativeErrors.append(relative)
        } else {
            absoluteErrors[next] = error
            relativeErrors[next] = relative
            next = (next + 1) % window
        }
    }

    /// Root mean squared error over the window (0 when nothing was scored).
    var rmse: Double {
        guard !absoluteErrors.isEmpty else { return 0 }
        var sum = 0.0
        for e in absoluteErrors { sum += e * e }
        return (sum / Double(absoluteErrors.count)).squareRoot()
    }

    /// Mean of |predicted − observed| / observed over the window (0 when nothing was scored).
    var meanRelativeError: Double {
        guard !relativeErrors.isEmpty else { return 0 }
        return relativeErrors.reduce(0, +) / Double(relativeErrors.count)
    }
}
