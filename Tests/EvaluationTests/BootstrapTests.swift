import XCTest

@testable import Evaluation

final class BootstrapTests: XCTestCase {
    /// 0/1 outcomes from a fixed pattern: [model][metric][item].
    func outcomes(models: Int, items: Int, salt: Int) -> [[[Bool]]] {
        (0..<models).map { model in [(0..<items).map { ($0 * 7 + model * 3 + salt) % 5 < 2 }, (0..<items).map { $0 % 3 == model }] }
    }

    func testSameSeedSameIntervalsAndTheSeedMatters() throws {
        let data = outcomes(models: 1, items: 200, salt: 1)
        let bootstrap = Bootstrap(BootstrapSettings(resamples: 500, seed: 3))
        let first = try XCTUnwrap(bootstrap.run(outcomes: data, strata: [Array(0..<200)], key: "b/all"))
        let again = try XCTUnwrap(bootstrap.run(outcomes: data, strata: [Array(0..<200)], key: "b/all"))
        XCTAssertEqual(first, again)
        let otherSeed = try XCTUnwrap(Bootstrap(BootstrapSettings(resamples: 500, seed: 4)).run(outcomes: data, strata: [Array(0..<200)], key: "b/all"))
        let otherKey = try XCTUnwrap(bootstrap.run(outcomes: data, strata: [Array(0..<200)], key: "b/subset:x"))
        XCTAssertNotEqual(first.estimates, otherSeed.estimates)
        XCTAssertNotEqual(first.estimates, otherKey.estimates)
        // The point value is the exact accuracy, and the interval holds it.
        let exact = Double(data[0][0].filter { $0 }.count) / 200
        XCTAssertEqual(first.estimates[0][0].value, exact)
        XCTAssertEqual(otherSeed.estimates[0][0].value, exact)
        XCTAssertLessThan(first.estimates[0][0].low, exact)
        XCTAssertGreaterThan(first.estimates[0][0].high, exact)
        // About ±1.96·√(p(1−p)/n) for n = 200.
        let halfWidth = 1.96 * (exact * (1 - exact) / 200).squareRoot()
        XCTAssertEqual(first.estimates[0][0].high - first.estimates[0][0].low, 2 * halfWidth, accuracy: 0.4 * halfWidth)
        XCTAssertNil(first.differences)
    }

    func testDegenerateOutcomesAndEmptyScopes() throws {
        let bootstrap = Bootstrap(BootstrapSettings(resamples: 50))
        let all = try XCTUnwrap(bootstrap.run(outcomes: [[[true, true, true]]], strata: [[0, 1, 2]], key: "k"))
        XCTAssertEqual(all.estimates[0][0], Estimate(value: 1, low: 1, high: 1))
        XCTAssertNil(bootstrap.run(outcomes: [[[true]]], strata: [[]], key: "k"))
        XCTAssertNil(bootstrap.run(outcomes: [[[]]], strata: [], key: "k"))
    }

    /// Macro averages resample within each subset: two subsets, one always right and one always wrong,
    /// have a macro accuracy of exactly 0.5 in every resample.
    func testMacroResamplesWithinSubsets() throws {
        let values = [[[true, true, true, false, false]]]
        let result = try XCTUnwrap(Bootstrap(BootstrapSettings(resamples: 200)).run(outcomes: values, strata: [[0, 1, 2], [3, 4]], key: "m"))
        XCTAssertEqual(result.estimates[0][0], Estimate(value: 0.5, low: 0.5, high: 0.5))
    }

    /// The paired difference uses the same draws for both models: a model against itself differs by exactly
    /// 0, and the difference's interval is narrower than unpaired intervals would suggest.
    func testPairedDifference() throws {
        let one = outcomes(models: 1, items: 120, salt: 2)[0]
        let same = try XCTUnwrap(Bootstrap(BootstrapSettings()).run(outcomes: [one, one], strata: [Array(0..<120)], key: "p"))
        XCTAssertEqual(same.differences?[0], Estimate(value: 0, low: 0, high: 0))
        XCTAssertEqual(same.estimates[0], same.estimates[1])
        // B is A with 6 wrong items made right: +5 points, and every resample moves the same way or not at all.
        var better = one
        var flipped = 0
        for index in better[0].indices where !better[0][index] && flipped < 6 {
            better[0][index] = true
            flipped += 1
        }
        let paired = try XCTUnwrap(Bootstrap(BootstrapSettings()).run(outcomes: [one, better], strata: [Array(0..<120)], key: "p"))
        let difference = try XCTUnwrap(paired.differences?[0])
        XCTAssertEqual(difference.value, 6.0 / 120, accuracy: 1e-12)
        XCTAssertGreaterThan(difference.low, 0)
        XCTAssertLessThan(difference.high - difference.low, paired.estimates[0][0].high - paired.estimates[0][0].low)
        // Model A's interval is the same with or without a second model (same draws, same key).
        let alone = try XCTUnwrap(Bootstrap(BootstrapSettings()).run(outcomes: [one], strata: [Array(0..<120)], key: "p"))
        XCTAssertEqual(alone.estimates[0], paired.estimates[0])
    }

    /// numpy.quantile's default (linear) method.
    func testQuantileInterpolatesLikeNumpy() {
        let values: [Double] = [1, 2, 3, 4, 10]
        // numpy.quantile([1, 2, 3, 4, 10], [0.025, 0.5, 0.975]) = [1.1, 3.0, 9.4]
        XCTAssertEqual(Bootstrap.quantile(values, 0.025), 1.1, accuracy: 1e-12)
        XCTAssertEqual(Bootstrap.quantile(values, 0.5), 3)
        XCTAssertEqual(Bootstrap.quantile(values, 0.975), 9.4, accuracy: 1e-12)
        XCTAssertEqual(Bootstrap.quantile([7], 0.975), 7)
        XCTAssertTrue(Bootstrap.quantile([], 0.5).isNaN)
    }
}
