//! Python values to and from session data (JSON or MessagePack), through a
//! small owned tree so the serde codecs do the wire work.
//!
//! Python to wire: `None`, `bool`, `int` (64-bit), `float`, `str`, `bytes`
//! (MessagePack only), `list`/`tuple` and `dict` (string keys in JSON), at
//! most [`MAX_DEPTH`] levels deep. Wire to Python: the same types, arrays as
//! lists, maps as dicts (array keys, which only MessagePack can carry,
//! become tuples).

use std::fmt;

use bytes::Bytes;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use evsock::session::{Format, MAX_DEPTH};

use crate::convert::type_name;
use crate::errors::invalid_arg;

/// One data value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::UInt(u) => s.serialize_u64(*u),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(t) => s.serialize_str(t),
            Value::Bin(b) => s.serialize_bytes(b),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON or MessagePack value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bin(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bin(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        // Never trust a length prefix for the allocation.
        let mut items = Vec::with_capacity(a.size_hint().unwrap_or(0).min(256));
        while let Some(v) = a.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(a.size_hint().unwrap_or(0).min(256));
        while let Some((k, v)) = a.next_entry()? {
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

// ------------------------------------------------------- Python -> Value ---

/// Converts a Python object for the given wire format.
pub fn from_py(v: &Bound<'_, PyAny>, format: Format) -> PyResult<Value> {
    convert(v, format, 0)
}

fn convert(v: &Bound<'_, PyAny>, format: Format, depth: usize) -> PyResult<Value> {
    let py = v.py();
    if depth > MAX_DEPTH {
        return Err(invalid_arg(
            py,
            format!("data is nested more than {MAX_DEPTH} levels deep (or contains itself)"),
        ));
    }
    if v.is_none() {
        return Ok(Value::Nil);
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Value::Int(i));
        }
        if let Ok(u) = v.extract::<u64>() {
            return Ok(Value::UInt(u));
        }
        return Err(invalid_arg(
            py,
            "an int in data does not fit in 64 bits (-2**63 to 2**64-1)",
        ));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        let x = f.value();
        if format == Format::Json && !x.is_finite() {
            return Err(invalid_arg(
                py,
                format!("JSON cannot carry the float {x}; use format=\"msgpack\" or a string"),
            ));
        }
        return Ok(Value::Float(x));
    }
    if let Ok(s) = v.cast::<PyString>() {
        let s = s.to_str().map_err(|_| {
            invalid_arg(
                py,
                "a str in data is not valid Unicode (it contains a lone surrogate)",
            )
        })?;
        return Ok(Value::Str(s.to_owned()));
    }
    if v.is_instance_of::<PyBytes>()
        || v.is_instance_of::<PyByteArray>()
        || v.is_instance_of::<PyMemoryView>()
    {
        if format == Format::Json {
            return Err(invalid_arg(
                py,
                "JSON cannot carry bytes; use format=\"msgpack\" or encode them (base64)",
            ));
        }
        return Ok(Value::Bin(
            crate::convert::bytes_like(v, "data")?.into_owned(),
        ));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut entries = Vec::with_capacity(d.len());
        for (k, val) in d.iter() {
            if format == Format::Json && !k.is_instance_of::<PyString>() {
                return Err(invalid_arg(
                    py,
                    format!(
                        "JSON object keys must be str, not {} ({})",
                        type_name(&k),
                        k.repr().map(|r| r.to_string()).unwrap_or_default()
                    ),
                ));
            }
            entries.push((
                convert(&k, format, depth + 1)?,
                convert(&val, format, depth + 1)?,
            ));
        }
        return Ok(Value::Map(entries));
    }
    if let Ok(l) = v.cast::<PyList>() {
        let mut items = Vec::with_capacity(l.len());
        for i in l.iter() {
            items.push(convert(&i, format, depth + 1)?);
        }
        return Ok(Value::Array(items));
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        let mut items = Vec::with_capacity(t.len());
        for i in t.iter() {
            items.push(convert(&i, format, depth + 1)?);
        }
        return Ok(Value::Array(items));
    }
    Err(PyTypeError::new_err(format!(
        "cannot encode a {} as session data: use None, bool, int, float, str, bytes (msgpack), \
         list, tuple or dict",
        type_name(v)
    )))
}

/// Encodes a Python object as one data element of `format`.
pub fn encode(v: &Bound<'_, PyAny>, format: Format) -> PyResult<Bytes> {
    let value = from_py(v, format)?;
    format
        .encode(&value)
        .map_err(|e| invalid_arg(v.py(), format!("cannot encode data: {e}")))
}

// ------------------------------------------------------- Value -> Python ---

/// Converts a decoded value to Python objects.
pub fn to_py<'py>(py: Python<'py>, v: Value, as_key: bool) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Nil => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::UInt(u) => u.into_pyobject(py)?.into_any(),
        Value::Float(f) => PyFloat::new(py, f).into_any(),
        Value::Str(s) => PyString::new(py, &s).into_any(),
        Value::Bin(b) => PyBytes::new(py, &b).into_any(),
        Value::Array(items) => {
            let objs = items
                .into_iter()
                .map(|i| to_py(py, i, as_key))
                .collect::<PyResult<Vec<_>>>()?;
            if as_key {
                PyTuple::new(py, objs)?.into_any()
            } else {
                PyList::new(py, objs)?.into_any()
            }
        }
        Value::Map(entries) => {
            if as_key {
                return Err(invalid_arg(py, "a map used as a map key cannot be decoded"));
            }
            let d = PyDict::new(py);
            for (k, val) in entries {
                d.set_item(to_py(py, k, true)?, to_py(py, val, false)?)?;
            }
            d.into_any()
        }
    })
}

/// Decodes one data element (empty reads as `None`). The codec's validator
/// runs first, so nesting is bounded before the recursive decoder sees it.
pub fn decode<'py>(py: Python<'py>, raw: &[u8], format: Format) -> PyResult<Bound<'py, PyAny>> {
    if !raw.is_empty() {
        format
            .codec()
            .validate_value(raw)
            .map_err(|e| invalid_arg(py, format!("cannot decode data: {e}")))?;
    }
    let v: Value = format
        .decode(raw)
        .map_err(|e| invalid_arg(py, format!("cannot decode data: {e}")))?;
    to_py(py, v, false)
}
