import Foundation

/// The size of one verification batch, as the time model sees it.
public struct BatchShape: Sendable, Hashable, Codable {
    /// Sequences (sessions) in the batch.
    public var sequences: Int
    /// New tokens evaluated (sum over sequences of draft length + 1).
    public var newTokens: Int
    /// Context tokens already in the KV caches (sum over sequences): the attention cost.
    public var contextTokens: Int

    public init(sequences: Int, newTokens: Int, contextTokens: Int) {
        self.sequences = sequences
        self.newTokens = newTokens
        self.contextTokens = contextTokens
    }

    public static let empty = BatchShape(sequences: 0, newTokens: 0, contextTokens: 0)

    /// The shape with one more request added.
    public func adding(newTokens n: Int, contextTokens c: Int) -> BatchShape {
        BatchShape(sequences: sequences + 1, newTokens: newTokens + n, contextTokens: contextTokens + c)
    }

    /// Regression features: `[1, sequences, newTokens, contextTokens]`.
    @inlinable public var features: (Double, Double, Double, Double) {
        (1, Double(sequences), Double(newTokens), Double(contextTokens))
    }
}

/// Anything that predicts how long a verification batch takes (seconds).
public protocol BatchTimePredicting {
    func predictSeconds(_ shape: BatchShape) -> Double
}

/// Wraps a closure as a ``BatchTimePredicting`` (tests, fixed models).
public struct BatchTimeFunction: BatchTimePredicting, Sendable {
    public let body: @Sendable (BatchShape) -> Double
    public init(_ body: @escaping @Sendable (BatchShape) -> Double) { self.body = body }
    public func predictSeconds(_ shape: BatchShape) -> Double { body(shape) }
}

/// WISP's verification time estimator: batch time ≈ β0 + β1·sequences + β2·newTokens + β3·contextTokens,
/// fitted online by least squares.
///
/// The fit solves the normal equations `(XᵀX + R) β = Xᵀy + R β_prior` (4×4, Gaussian elimination with
/// partial pivoting) after every observation. `R` is diagonal with `R_ii = priorWeight · mean(x_i²) + ridge`,
/// i.e. the prior counts as `priorWeight` pseudo-observations in every feature's own scale: with few samples
/// the model predicts the prior, with many the data dominate, and collinear features (e.g. every request
/// with the same K) stay solvable. Old observations can be discounted (``Configuration/forgetting`` < 1) so
/// the model follows drift. Fit errors (RMSE and mean relative error) are computed over a window of the
/// most recent observations with the current coefficients.
public struct LinearBatchTimeModel: BatchTimePredicting, Sendable {
    public struct Configuration: Sendable, Hashable, Codable {
        /// β used before enough data is seen (and shrunk towards): `[intercept s, s/sequence, s/new token,
        /// s/context token]`. The default is a rough CPU guess for a ~0.5B target.
        public var priorCoefficients: [Double]
        /// Weight of the prior in pseudo-observations.
        public var priorWeight: Double
        /// Absolute ridge added to the diagonal (numerical safety).
        public var ridge: Double
        /// Per-observation discount of past data, in (0, 1]; 1 = plain least squares.
        public var forgetting: Double
        /// Below this many observations the prior coefficients are used unchanged.
        public var minSamples: Int
        /// Observations kept for the fit-error report.
        public var errorWindow: Int

        public init(priorCoefficients: [Double] = [0.02, 0.002, 0.004, 0.000_002], priorWeight: Double = 1,
                    ridge: Double = 1e-9, forgetting: Double = 1, minSamples: Int = 4, errorWindow: Int = 256) {
            precondition(priorCoefficients.count == 4, "four coefficients: 1, sequences, new tokens, context tokens")
            precondition(forgetting > 0 && forgetting <= 1, "forgetting must be in (0, 1]")
            self.priorCoefficients = priorCoefficients
            self.priorWeight = priorWeight
            self.ridge = ridge
            self.forgetting = forgetting
            self.minSamples = minSamples
            self.errorWindow = max(1, errorWindow)
        }
    }

    /// Quality of the current fit on the recent window.
    public struct FitError: Sendable, Hashable, Codable {
        public var samples: Int
        /// Root mean squared error (seconds).
        public var rmse: Double
        /// Mean of |predicted − observed| / observed.
        public var meanRelativeError: Double
    }

    public let configuration: Configuration
    /// Current coefficients `[β0, β1, β2, β3]`.
    public private(set) var coefficients: [Double]
    /// Observations seen (not discounted).
    public private(set) var sampleCount: Int = 0

    private var xtx = [Double](repeating: 0, count: 16)
    private var xty = [Double](repeating: 0, count: 4)
    private var sumSquares = [Double](repeating: 0, count: 4)
    private var weight: Double = 0
    private var windowShapes: [BatchShape] = []
    private var windowSeconds: [Double] = []
    private var windowNext = 0

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        coefficients = configuration.priorCoefficients
        windowShapes.reserveCapacity(configuration.errorWindow)
        windowSeconds.reserveCapacity(configuration.errorWindow)
    }

    /// A model that starts from known coefficients (e.g. received from the estimator service) instead of
    /// the configured prior; further observations refine it as usual (the coefficients act as the prior).
    public init(coefficients: [Double], configuration: Configuration = Configuration()) {
        precondition(coefficients.count == 4, "four coefficients: 1, sequences, new tokens, context tokens")
        var c = configuration
        c.priorCoefficients = coefficients
        self.init(configuration: c)
    }

    /// The verification time of one more sequence with `contextTokens` cached, as a function of its draft
    /// length (what ``SpeculationController`` plans with): fixed = β0 + β1 + β3·context, per token = β2.
    public func verifyTimeModel(contextTokens: Int) -> VerifyTimeModel {
        VerifyTimeModel(fixedSeconds: coefficients[0] + coefficients[1] + coefficients[3] * Double(contextTokens),
                        perTokenSeconds: coefficients[2])
    }

    /// Whether the coefficients come from data (false: still the prior).
    public var isFitted: Bool { sampleCount >= configuration.minSamples }

    /// Predicted batch time in seconds (never negative). An empty batch takes 0.
    public func predictSeconds(_ shape: BatchShape) -> Double {
        guard shape.sequences > 0 else { return 0 }
        let f = shape.features
        let y = coefficients[0] * f.0 + coefficients[1] * f.1 + coefficients[2] * f.2 + coefficients[3] * f.3
        return max(y, 0)
    }

    /// Adds one measured batch and refits.
    public mutating func observe(_ shape: BatchShape, seconds: Double) {
        guard seconds.isFinite, seconds >= 0, shape.sequences > 0 else { return }
        let f = shape.features
        let x = [f.0, f.1, f.2, f.3]
        let lambda = configuration.forgetting
        for i in 0..<4 {
            xty[i] = lambda * xty[i] + x[i] * seconds
            sumSquares[i] = lambda * sumSquares[i] + x[i] * x[i]
            for j in 0..<4 { xtx[i * 4 + j] = lambda * xtx[i * 4 + j] + x[i] * x[j] }
        }
        weight = lambda * weight + 1
        sampleCount += 1
        if windowShapes.count < configuration.errorWindow {
            windowShapes.append(shape)
            windowSeconds.append(seconds)
        } else {
            windowShapes[windowNext] = shape
            windowSeconds[windowNext] = seconds
            windowNext = (windowNext + 1) % configuration.errorWindow
        }
        refit()
    }

    /// RMSE and mean relative error of the current coefficients on the recent observations.
    public var fitError: FitError {
        let n = windowShapes.count
        guard n > 0 else { return FitError(samples: 0, rmse: 0, meanRelativeError: 0) }
        var sq = 0.0
        var rel = 0.0
        for i in 0..<n {
            let e = predictSeconds(windowShapes[i]) - windowSeconds[i]
            sq += e * e
            rel += abs(e) / max(windowSeconds[i], 1e-9)
        }
        return FitError(samples: n, rmse: (sq / Double(n)).squareRoot(), meanRelativeError: rel / Double(n))
    }

    private mutating func refit() {
        guard sampleCount >= configuration.minSamples, weight > 0 else {
            coefficients = configuration.priorCoefficients
            return
        }
        var a = xtx
        var b = xty
        let prior = configuration.priorCoefficients
        for i in 0..<4 {
            let r = configuration.priorWeight * max(sumSquares[i] / weight, 1e-12) + configuration.ridge
            a[i * 4 + i] += r
            b[i] += r * prior[i]
        }
        if let beta = Self.solve4(a, b), beta.allSatisfy({ $0.isFinite }) {
            coefficients = beta
        } else {
            coefficients = prior
        }
    }

    /// Gaussian elimination with partial pivoting on a 4×4 system; nil if (numerically) singular.
    static func solve4(_ matrix: [Double], _ rhs: [Double]) -> [Double]? {
        var a = matrix
        var b = rhs
        var scale = 0.0
        for v in a { scale = max(scale, abs(v)) }
        guard scale > 0 else { return nil }
        for col in 0..<4 {
            var pivot = col
            for r in (col + 1)..<4 where abs(a[r * 4 + col]) > abs(a[pivot * 4 + col]) { pivot = r }
            guard abs(a[pivot * 4 + col]) > scale * 1e-15 else { return nil }
            if pivot != col {
                for c in 0..<4 { a.swapAt(col * 4 + c, pivot * 4 + c) }
                b.swapAt(col, pivot)
            }
            for r in (col + 1)..<4 {
                let f = a[r * 4 + col] / a[col * 4 + col]
                guard f != 0 else { continue }
                for c in col..<4 { a[r * 4 + c] -= f * a[col * 4 + c] }
                b[r] -= f * b[col]
            }
        }
        var x = [Double](repeating: 0, count: 4)
        for r in stride(from: 3, through: 0, by: -1) {
            var s = b[r]
            for c in (r + 1)..<4 { s -= a[r * 4 + c] * x[c] }
            x[r] = s / a[r * 4 + r]
        }
        return x
    }
}
