import WeightsIO

/// The report as JSON (`--json FILE`): every score with its interval and counts, and every skipped item.
/// Fractions are in [0, 1]; a value that is not finite is null.
public enum ReportJSON {
    public static let method = "percentile bootstrap over items: each resample draws n items with replacement "
        + "(within each subset for macro averages); compared models share the draws (paired)"

    public static func encode(_ report: EvaluationReport) -> [UInt8] {
        Array((PrettyJSON.render(value(report)) + "\n").utf8)
    }

    /// The `schema` key's value: docs/schemas/eval.schema.json describes this version.
    public static let schema = "sdsclip.eval/1"

    public static func value(_ report: EvaluationReport) -> JSONValue {
        object([
            ("schema", .string(schema)),
            ("models", .array(report.models.map { model in
                object([("label", .string(model.label)), ("images", integer(model.images)), ("captions", integer(model.captions)),
                        ("failed_images", integer(model.failedImages)), ("failed_captions", integer(model.failedCaptions)),
                        ("scoring", model.scoring.map(JSONValue.string) ?? .null)])
            })),
            ("bootstrap", object([("method", .string(method)), ("resamples", integer(report.bootstrap.resamples)),
                                  ("seed", .number(JSONNumber(report.bootstrap.seed))),
                                  ("confidence", number(report.bootstrap.confidence))])),
            ("benchmarks", .array(report.benchmarks.map(benchmark))),
        ])
    }

    static func benchmark(_ result: BenchmarkResult) -> JSONValue {
        object([
            ("name", .string(result.name)), ("kind", .string(result.kind.rawValue)), ("source", .string(result.source)),
            ("rows", integer(result.rows)), ("scored", integer(result.scored)), ("skipped_count", integer(result.skipped.count)),
            ("subset_field", result.subsetName.map(JSONValue.string) ?? .null),
            ("scores", .array(result.scores.map(score))),
            ("skipped", .array(result.skipped.map { object([("id", .string($0.id)), ("reason", .string($0.reason))]) })),
        ])
    }

    static func score(_ score: Score) -> JSONValue {
        var members: [(String, JSONValue)] = [("metric", .string(score.metric))]
        switch score.scope {
        case .all: members += [("scope", .string("all")), ("subset", .null), ("subsets", .null)]
        case .subset(let name): members += [("scope", .string("subset")), ("subset", .string(name)), ("subsets", .null)]
        case .macro(let subsets): members += [("scope", .string("macro")), ("subset", .null), ("subsets", .array(subsets.map(JSONValue.string)))]
        }
        members.append(("items", integer(score.items)))
        members.append(("models", .array(score.models.map { model in
            object([("correct", model.correct.map(integer) ?? .null)] + estimate(model.estimate))
        })))
        members.append(("difference", score.difference.map { object(estimate($0)) } ?? .null))
        return object(members)
    }

    static func estimate(_ estimate: Estimate) -> [(String, JSONValue)] {
        [("value", number(estimate.value)), ("low", number(estimate.low)), ("high", number(estimate.high))]
    }

    static func object(_ members: [(String, JSONValue)]) -> JSONValue {
        var object = JSONObject()
        for (key, value) in members { object.append(key, value) }
        return .object(object)
    }

    static func integer(_ value: Int) -> JSONValue { .number(JSONNumber(value)) }

    /// Shortest round-trip decimal, null when not finite.
    static func number(_ value: Double) -> JSONValue { JSONNumber(value).map(JSONValue.number) ?? .null }
}

/// JSON with two-space indentation; strings escaped by WeightsIO's writer.
enum PrettyJSON {
    static func render(_ value: JSONValue, indent: String = "") -> String {
        let inner = indent + "  "
        switch value {
        case .array(let elements) where !elements.isEmpty:
            return "[\n" + elements.map { inner + render($0, indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
        case .object(let object) where object.count > 0:
            return "{\n" + object.members.map { key, member in
                inner + scalar(.string(key)) + ": " + render(member, indent: inner)
            }.joined(separator: ",\n") + "\n\(indent)}"
        default:
            return scalar(value)
        }
    }

    static func scalar(_ value: JSONValue) -> String { String(decoding: JSONWriter.encode(value), as: UTF8.self) }
}
