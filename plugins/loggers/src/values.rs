//! Recipe fields as trackers take them: the host gives each field of the resolved recipe as its
//! RON text (`0.05`, `"resnet18"`, `adamw`, `(32, 32)`), and a tracker's parameter table wants a
//! number, a boolean or a string.

/// A recipe field's value, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// A whole number.
    Integer(i64),
    /// Any other number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A string's text, or the RON text of anything else.
    Text(String),
}

/// Reads a recipe field's RON text: a number, a boolean, a string's text, or else the RON text
/// itself (`adamw`, `(32, 32)`, `None`).
pub fn field_value(ron_text: &str) -> FieldValue {
    if let Ok(n) = ron_text.parse::<i64>() {
        FieldValue::Integer(n)
    } else if let Ok(x) = ron_text.parse::<f64>() {
        FieldValue::Number(x)
    } else if let Ok(b) = ron_text.parse::<bool>() {
        FieldValue::Bool(b)
    } else if let Ok(s) = ron::from_str::<String>(ron_text) {
        FieldValue::Text(s)
    } else {
        FieldValue::Text(ron_text.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ron_texts_become_typed_values() {
        assert_eq!(field_value("7"), FieldValue::Integer(7));
        assert_eq!(field_value("0.002"), FieldValue::Number(0.002));
        assert_eq!(field_value("1e-4"), FieldValue::Number(1e-4));
        assert_eq!(field_value("true"), FieldValue::Bool(true));
        assert_eq!(
            field_value(r#""data/a \"b\"""#),
            FieldValue::Text("data/a \"b\"".into())
        );
        assert_eq!(field_value("adamw"), FieldValue::Text("adamw".into()));
        assert_eq!(field_value("(32, 32)"), FieldValue::Text("(32, 32)".into()));
    }
}
