//! nsq_to_nsq's JSON options: `--require-json-field` (with `--require-json-value`) to
//! pass only some messages, `--whitelist-json-field` to pass only some fields, decided
//! as Go's `shouldPassMessage` and `filterMessage` decide, and re-encoded as Go's
//! `json.Marshal` writes (keys sorted, HTML escaped, integral numbers without a point).

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::go_cli::values::parse_go_float;
use crate::go_json;

/// What becomes of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Publish this body.
    Pass(Bytes),
    /// FIN without publishing (not JSON, or not matching).
    Drop,
    /// REQ with backoff (the required field is missing and a value was required).
    Backoff,
}

/// The JSON options.
#[derive(Debug, Clone)]
pub struct JsonFilter {
    require_field: String,
    require_value: String,
    /// `--require-json-value` read as a float, when it is one.
    require_number: Option<f64>,
    whitelist: Vec<String>,
}

impl JsonFilter {
    /// The filter for the flags, or `None` when neither a required field nor a
    /// whitelist is given (bodies then pass untouched, JSON or not).
    pub fn new(require_field: &str, require_value: &str, whitelist: &[String]) -> Option<Self> {
        if require_field.is_empty() && whitelist.is_empty() {
            return None;
        }
        Some(JsonFilter {
            require_field: require_field.to_string(),
            require_value: require_value.to_string(),
            require_number: parse_go_float(require_value),
            whitelist: whitelist.to_vec(),
        })
    }

    /// Go's `HandleMessage` up to the publish: decode, check, filter.
    pub fn apply(&self, body: &Bytes) -> Verdict {
        let Some(fields) = decode_object(body) else {
            tracing::error!(
                "ERROR: Unable to decode json: {}",
                String::from_utf8_lossy(body)
            );
            return Verdict::Drop;
        };
        match self.should_pass(&fields) {
            Some(true) => Verdict::Pass(self.filter(&fields, body)),
            Some(false) => Verdict::Drop,
            None => {
                tracing::error!("ERROR: missing field to check required value");
                Verdict::Backoff
            }
        }
    }

    /// Go's `shouldPassMessage`: `Some(pass)`, or `None` to back off.
    fn should_pass(&self, fields: &Map<String, Value>) -> Option<bool> {
        if self.require_field.is_empty() {
            return Some(true);
        }
        let Some(value) = fields.get(&self.require_field) else {
            return if self.require_value.is_empty() {
                Some(false)
            } else {
                None
            };
        };
        if self.require_value.is_empty() {
            return Some(true);
        }
        Some(match (value, self.require_number) {
            (Value::String(text), _) => *text == self.require_value,
            (Value::Number(number), Some(wanted)) => number.as_f64() == Some(wanted),
            _ => false,
        })
    }

    /// Go's `filterMessage`: the body unchanged without a whitelist, else only the
    /// whitelisted fields present.
    fn filter(&self, fields: &Map<String, Value>, body: &Bytes) -> Bytes {
        if self.whitelist.is_empty() {
            return body.clone();
        }
        let mut kept: Vec<(&str, &Value)> = self
            .whitelist
            .iter()
            .filter_map(|key| fields.get_key_value(key))
            .map(|(key, value)| (key.as_str(), value))
            .collect();
        kept.sort_by(|a, b| a.0.cmp(b.0));
        kept.dedup_by(|a, b| a.0 == b.0);
        let mut out = vec![b'{'];
        for (i, (key, value)) in kept.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            go_json::push_string(&mut out, key);
            out.push(b':');
            match value.as_f64() {
                // "avoid printing int as float": Go's `float64(int64(v)) == v`.
                Some(float)
                    if float.fract() == 0.0
                        && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18)
                            .contains(&float) =>
                {
                    out.extend_from_slice((float as i64).to_string().as_bytes())
                }
                _ => push_go_json(&mut out, value),
            }
        }
        out.push(b'}');
        Bytes::from(out)
    }
}

/// Go's `json.Unmarshal` into a `map[string]interface{}`: an object, or `null` (which
/// leaves the map empty); anything else is a decode error.
fn decode_object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body).ok()? {
        Value::Object(fields) => Some(fields),
        Value::Null => Some(Map::new()),
        _ => None,
    }
}

/// A decoded value as Go's `json.Marshal` writes an `interface{}`: numbers are float64,
/// object keys sorted.
fn push_go_json(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(number) => {
            let float = number.as_f64().unwrap_or(0.0);
            out.extend_from_slice(go_json::float(float).as_bytes());
        }
        Value::String(text) => go_json::push_string(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_go_json(out, item);
            }
            out.push(b']');
        }
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                go_json::push_string(out, key);
                out.push(b':');
                if let Some(item) = fields.get(key) {
                    push_go_json(out, item);
                }
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(field: &str, value: &str, whitelist: &[&str]) -> JsonFilter {
        let whitelist: Vec<String> = whitelist.iter().map(|s| s.to_string()).collect();
        JsonFilter::new(field, value, &whitelist).unwrap()
    }

    fn verdict(filter: &JsonFilter, body: &str) -> Verdict {
        filter.apply(&Bytes::copy_from_slice(body.as_bytes()))
    }

    fn pass(body: &str) -> Verdict {
        Verdict::Pass(Bytes::copy_from_slice(body.as_bytes()))
    }

    #[test]
    fn no_options_means_no_json() {
        assert!(JsonFilter::new("", "", &[]).is_none());
    }

    #[test]
    fn required_field_and_value() {
        let present = filter("kind", "", &[]);
        assert_eq!(verdict(&present, r#"{"kind":1}"#), pass(r#"{"kind":1}"#));
        assert_eq!(verdict(&present, r#"{"other":1}"#), Verdict::Drop);
        assert_eq!(verdict(&present, "not json"), Verdict::Drop);
        assert_eq!(verdict(&present, "[1]"), Verdict::Drop);

        let text = filter("kind", "a", &[]);
        assert_eq!(verdict(&text, r#"{"kind":"a"}"#), pass(r#"{"kind":"a"}"#));
        assert_eq!(verdict(&text, r#"{"kind":"b"}"#), Verdict::Drop);
        assert_eq!(verdict(&text, r#"{"other":"a"}"#), Verdict::Backoff);
        assert_eq!(verdict(&text, "null"), Verdict::Backoff);

        let number = filter("n", "2.5", &[]);
        assert_eq!(verdict(&number, r#"{"n":2.5}"#), pass(r#"{"n":2.5}"#));
        assert_eq!(verdict(&number, r#"{"n":"2.5"}"#), pass(r#"{"n":"2.5"}"#));
        assert_eq!(verdict(&number, r#"{"n":25e-1}"#), pass(r#"{"n":25e-1}"#));
        assert_eq!(verdict(&number, r#"{"n":3}"#), Verdict::Drop);
        assert_eq!(verdict(&text, r#"{"kind":true}"#), Verdict::Drop);
    }

    #[test]
    fn whitelist_reencodes_as_go_marshal() {
        let keep = filter("", "", &["z", "a", "n", "f", "o", "missing"]);
        assert_eq!(
            verdict(
                &keep,
                r#"{"a":"<b>&","drop":1,"n":3.0,"f":0.5,"z":[1.0,{"y":1,"x":2}],"o":1e21}"#
            ),
            pass(r#"{"a":"\u003cb\u003e\u0026","f":0.5,"n":3,"o":1e+21,"z":[1,{"x":2,"y":1}]}"#)
        );
        assert_eq!(verdict(&keep, r#"{"q":1}"#), pass("{}"));
    }
}
