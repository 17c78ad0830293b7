//! The fast path of [`crate::parse`]: a valid runbook read in one pass.
//!
//! `toml` builds a general document (`DeTable`: index maps, hashed keys, borrowed-or-owned
//! strings) and then deserializes from it; on big runbooks that document costs three times
//! what tokenizing and parsing the text does. Here the same parser's events (`toml_parser`,
//! with the same whitespace and depth checks `toml` adds) go into a light tree of vectors,
//! and the raw shapes are deserialized from that tree with `toml`'s own rules: the same
//! visitor calls, spans and `Spanned` protocol.
//!
//! It only takes the common case. Anything else gives `None` and the caller parses with
//! `toml`, which also words every error: a syntax error, a duplicate or reopened table, an
//! array of tables, a dotted key inside an inline table, a date-time, a number `toml` would
//! not read as an `i64` or a finite `f64`, or a value the raw shapes refuse. A test holds
//! both paths to the same result on every runbook and fixture of the repository.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use toml_parser::decoder::Encoding;
use toml_parser::decoder::ScalarKind;
use toml_parser::parser::{Event, EventKind, EventReceiver, RecursionGuard, ValidateWhitespace};
use toml_parser::{ErrorSink, ParseError, Source, Span};

use crate::FastMap;

/// `toml`'s nesting limit.
const DEPTH: u32 = 80;

/// A value with the span `toml` gives it.
#[derive(Debug)]
pub(crate) struct Node<'i> {
    pub(crate) value: Value<'i>,
    pub(crate) span: Range<usize>,
}

#[derive(Debug)]
pub(crate) enum Value<'i> {
    String(Cow<'i, str>),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Array(Vec<Node<'i>>),
    Table(Table<'i>),
}

/// A key with its span.
#[derive(Debug, Clone)]
pub(crate) struct Key<'i> {
    pub(crate) name: Cow<'i, str>,
    pub(crate) span: Range<usize>,
}

/// A table: its entries in insertion order, and how it came to be (`toml`'s rules for
/// reopening a table depend on it).
#[derive(Debug, Default)]
pub(crate) struct Table<'i> {
    pub(crate) entries: Vec<(Key<'i>, Node<'i>)>,
    /// Positions by name, once the table is big enough for a linear search to cost.
    index: Option<Box<FastMap<Cow<'i, str>, usize>>>,
    implicit: bool,
    dotted: bool,
    inline: bool,
}

impl<'i> Table<'i> {
    fn position(&self, name: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(name).copied(),
            None => self.entries.iter().position(|(k, _)| k.name == name),
        }
    }

    /// Add an entry that is not there yet.
    fn push(&mut self, key: Key<'i>, node: Node<'i>) {
        if let Some(index) = &mut self.index {
            index.insert(key.name.clone(), self.entries.len());
        } else if self.entries.len() >= 16 {
            let mut index: FastMap<Cow<'i, str>, usize> =
                self.entries.iter().enumerate().map(|(i, (k, _))| (k.name.clone(), i)).collect();
            index.insert(key.name.clone(), self.entries.len());
            self.index = Some(Box::new(index));
        }
        self.entries.push((key, node));
    }
}

/// Any problem reported by the tokenizer, the parser or a decoder.
#[derive(Default)]
struct Flag(bool);

impl ErrorSink for Flag {
    fn report_error(&mut self, _error: ParseError) {
        self.0 = true;
    }
}

/// The document's root table, or `None` when `toml` should parse it.
pub(crate) fn document(text: &str) -> Option<Table<'_>> {
    let source = Source::new(text);
    let tokens = source.lex().into_vec();
    let mut events = Vec::with_capacity(tokens.len());
    let mut flag = Flag::default();
    {
        let mut significant = Significant(&mut events);
        let mut receiver = ValidateWhitespace::new(&mut significant, source);
        let mut receiver = RecursionGuard::new(&mut receiver, DEPTH);
        toml_parser::parser::parse_document(&tokens, &mut receiver, &mut flag);
    }
    // The tokens are done with; freeing them now keeps the peak of memory down (a big
    // runbook's tokens run to megabytes, and fresh pages cost more than the work).
    drop(tokens);
    if flag.0 {
        return None;
    }
    let mut walk = Walk { events: &events, at: 0, source, flag };
    let root = walk.document()?;
    (!walk.flag.0).then_some(root)
}

/// The events that carry meaning: whitespace, comments and newlines are checked (by
/// `ValidateWhitespace`) and then dropped, which halves what is kept and walked.
struct Significant<'a>(&'a mut Vec<Event>);

impl EventReceiver for Significant<'_> {
    fn std_table_open(&mut self, span: Span, error: &mut dyn ErrorSink) {
        self.0.std_table_open(span, error);
    }
    fn std_table_close(&mut self, span: Span, error: &mut dyn ErrorSink) {
        self.0.std_table_close(span, error);
    }
    fn array_table_open(&mut self, span: Span, error: &mut dyn ErrorSink) {
        self.0.array_table_open(span, error);
    }
    fn array_table_close(&mut self, span: Span, error: &mut dyn ErrorSink) {
        self.0.array_table_close(span, error);
    }
    fn inline_table_open(&mut self, span: Span, error: &mut dyn ErrorSink) -> bool {
        self.0.inline_table_open(span, error)
    }
    fn inline_table_close(&mut self, span: Span, error: &mut dyn ErrorSink) {
        self.0.inline_table_close(span, error);
    }
    fn array_open(&mut self, span: Span, error: &mut dyn ErrorSink) -> bool {
        self.0.array_open(span, error)
    }
    fn array_close(&mut self, span: Span, error: &mut dyn ErrorSink) {
        self.0.array_close(span, error);
    }
    fn simple_key(&mut self, span: Span, kind: Option<Encoding>, error: &mut dyn ErrorSink) {
        self.0.simple_key(span, kind, error);
    }
    fn key_sep(&mut self, span: Span, error: &mut dyn ErrorSink) {
        self.0.key_sep(span, error);
    }
    fn key_val_sep(&mut self, span: Span, error: &mut dyn ErrorSink) {
        self.0.key_val_sep(span, error);
    }
    fn scalar(&mut self, span: Span, kind: Option<Encoding>, error: &mut dyn ErrorSink) {
        self.0.scalar(span, kind, error);
    }
    fn value_sep(&mut self, span: Span, error: &mut dyn ErrorSink) {
        self.0.value_sep(span, error);
    }
    fn error(&mut self, span: Span, error: &mut dyn ErrorSink) {
        self.0.error(span, error);
    }
}

struct Header<'i> {
    path: Vec<Key<'i>>,
    key: Key<'i>,
    span: Range<usize>,
}

struct Walk<'e, 'i> {
    events: &'e [Event],
    at: usize,
    source: Source<'i>,
    flag: Flag,
}

impl<'i> Walk<'_, 'i> {
    fn next(&mut self) -> Option<Event> {
        let event = self.events.get(self.at).copied();
        self.at += 1;
        event
    }

    fn peek(&self) -> Option<EventKind> {
        self.events.get(self.at).map(Event::kind)
    }

    fn document(&mut self) -> Option<Table<'i>> {
        let mut root = Table::default();
        // Key-values before the first header belong to the root; after it, to the table
        // of the header, which joins the root when the next header (or the end) comes.
        let mut current: Option<(Header<'i>, Table<'i>)> = None;
        while let Some(event) = self.next() {
            match event.kind() {
                EventKind::StdTableOpen => {
                    if let Some((header, table)) = current.take() {
                        finish(&mut root, header, table)?;
                    }
                    let header = self.header(event)?;
                    let parent = descend(&mut root, &header.path, false)?;
                    // A table named again (even one only implied so far): `toml` decides.
                    if parent.position(&header.key.name).is_some() {
                        return None;
                    }
                    current = Some((header, Table::default()));
                }
                EventKind::SimpleKey => {
                    let (path, key) = self.key(event)?;
                    if self.next()?.kind() != EventKind::KeyValSep {
                        return None;
                    }
                    let value = self.value()?;
                    let table = match &mut current {
                        Some((_, table)) => table,
                        None => &mut root,
                    };
                    let parent = descend(table, &path, !path.is_empty())?;
                    if (!path.is_empty() && !parent.implicit) || parent.position(&key.name).is_some() {
                        return None;
                    }
                    parent.push(key, value);
                }
                EventKind::Whitespace | EventKind::Comment | EventKind::Newline => {}
                _ => return None,
            }
        }
        if let Some((header, table)) = current.take() {
            finish(&mut root, header, table)?;
        }
        Some(root)
    }

    /// `[a.b.c]`, after its opening bracket.
    fn header(&mut self, open: Event) -> Option<Header<'i>> {
        let mut keys = None;
        while let Some(event) = self.next() {
            match event.kind() {
                EventKind::StdTableClose => {
                    let (path, key) = keys?;
                    return Some(Header { path, key, span: open.span().start()..event.span().end() });
                }
                EventKind::SimpleKey => keys = Some(self.key(event)?),
                EventKind::Whitespace => {}
                _ => return None,
            }
        }
        None
    }

    /// A key, dotted or not: the path before its last part, and the last part.
    fn key(&mut self, first: Event) -> Option<(Vec<Key<'i>>, Key<'i>)> {
        let mut path = Vec::new();
        let mut last = self.decode_key(first)?;
        while self.peek() == Some(EventKind::KeySep) {
            self.at += 1;
            let event = self.next()?;
            if event.kind() != EventKind::SimpleKey {
                return None;
            }
            path.push(std::mem::replace(&mut last, self.decode_key(event)?));
        }
        (path.len() < DEPTH as usize).then_some((path, last))
    }

    fn decode_key(&mut self, event: Event) -> Option<Key<'i>> {
        let raw = self.source.get(event)?;
        let mut name = Cow::Borrowed("");
        raw.decode_key(&mut name, &mut self.flag);
        Some(Key { name, span: event.span().start()..event.span().end() })
    }

    fn value(&mut self) -> Option<Node<'i>> {
        let event = self.next()?;
        match event.kind() {
            EventKind::Scalar => self.scalar(event),
            EventKind::ArrayOpen => self.array(event),
            EventKind::InlineTableOpen => self.inline_table(event),
            _ => None,
        }
    }

    fn scalar(&mut self, event: Event) -> Option<Node<'i>> {
        let raw = self.source.get(event)?;
        let mut text = Cow::Borrowed("");
        let value = match raw.decode_scalar(&mut text, &mut self.flag) {
            ScalarKind::String => Value::String(text),
            ScalarKind::Boolean(b) => Value::Boolean(b),
            ScalarKind::Integer(radix) => Value::Integer(i64::from_str_radix(&text, radix.value()).ok()?),
            ScalarKind::Float => {
                let f: f64 = text.parse().ok()?;
                if !f.is_finite() {
                    return None;
                }
                Value::Float(f)
            }
            ScalarKind::DateTime => return None,
        };
        Some(Node { value, span: event.span().start()..event.span().end() })
    }

    fn array(&mut self, open: Event) -> Option<Node<'i>> {
        let mut items = Vec::new();
        let mut current = None;
        while let Some(event) = self.next() {
            match event.kind() {
                EventKind::Scalar | EventKind::ArrayOpen | EventKind::InlineTableOpen => {
                    if current.is_some() {
                        return None;
                    }
                    self.at -= 1;
                    current = Some(self.value()?);
                }
                EventKind::ValueSep => items.push(current.take()?),
                EventKind::Whitespace | EventKind::Comment | EventKind::Newline => {}
                EventKind::ArrayClose => {
                    items.extend(current);
                    let span = open.span().start()..event.span().end();
                    return Some(Node { value: Value::Array(items), span });
                }
                _ => return None,
            }
        }
        None
    }

    fn inline_table(&mut self, open: Event) -> Option<Node<'i>> {
        let mut table = Table { inline: true, ..Table::default() };
        let mut key = None;
        let mut value = None;
        while let Some(event) = self.next() {
            match event.kind() {
                EventKind::SimpleKey => {
                    let (path, k) = self.key(event)?;
                    if !path.is_empty() || key.is_some() {
                        return None;
                    }
                    key = Some(k);
                }
                EventKind::KeyValSep => {}
                EventKind::Scalar | EventKind::ArrayOpen | EventKind::InlineTableOpen => {
                    if value.is_some() {
                        return None;
                    }
                    self.at -= 1;
                    value = Some(self.value()?);
                }
                EventKind::ValueSep | EventKind::InlineTableClose => {
                    match (key.take(), value.take()) {
                        (Some(k), Some(v)) if table.position(&k.name).is_none() => table.push(k, v),
                        (None, None) if event.kind() == EventKind::InlineTableClose => {}
                        _ => return None,
                    }
                    if event.kind() == EventKind::InlineTableClose {
                        let span = open.span().start()..event.span().end();
                        return Some(Node { value: Value::Table(table), span });
                    }
                }
                EventKind::Whitespace | EventKind::Comment | EventKind::Newline => {}
                _ => return None,
            }
        }
        None
    }
}

/// The table a header or a dotted key names, creating the tables it implies, as `toml`
/// does; `None` where `toml` would refuse or do something this path does not.
fn descend<'t, 'i>(
    mut table: &'t mut Table<'i>,
    path: &[Key<'i>],
    dotted: bool,
) -> Option<&'t mut Table<'i>> {
    for key in path {
        let at = match table.position(&key.name) {
            Some(at) => at,
            None => {
                let implied = Table { implicit: true, dotted, ..Table::default() };
                table.push(key.clone(), Node { value: Value::Table(implied), span: key.span.clone() });
                table.entries.len() - 1
            }
        };
        let Value::Table(child) = &mut table.entries[at].1.value else { return None };
        if child.inline {
            return None;
        }
        if dotted && child.implicit {
            child.dotted = true;
        }
        if dotted && !child.implicit {
            return None;
        }
        table = child;
    }
    Some(table)
}

/// A header's table, done: into its parent, with the header's span.
fn finish<'i>(root: &mut Table<'i>, header: Header<'i>, table: Table<'i>) -> Option<()> {
    let parent = descend(root, &header.path, false)?;
    if parent.position(&header.key.name).is_some() {
        return None;
    }
    parent.push(header.key, Node { value: Value::Table(table), span: header.span });
    Some(())
}

/// Deserializing from the tree failed: `toml` will say why.
#[derive(Debug)]
pub(crate) struct Declined;

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to toml")
    }
}

impl std::error::Error for Declined {}

impl de::Error for Declined {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Declined
    }
}

/// A node as a serde deserializer, making the calls `toml`'s `ValueDeserializer` makes.
pub(crate) struct NodeDeserializer<'i>(pub(crate) Node<'i>);

impl<'de> IntoDeserializer<'de, Declined> for NodeDeserializer<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'de> {
    type Error = Declined;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        match self.0.value {
            Value::String(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Value::String(Cow::Owned(s)) => visitor.visit_string(s),
            Value::Integer(i) => visitor.visit_i64(i),
            Value::Float(f) => visitor.visit_f64(f),
            Value::Boolean(b) => visitor.visit_bool(b),
            Value::Array(items) => visitor.visit_seq(Items(items.into_iter())),
            Value::Table(table) => {
                visitor.visit_map(Entries { entries: table.entries.into_iter(), value: None })
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Declined> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        if serde_spanned::de::is_spanned(name) {
            let span = self.0.span.clone();
            return visitor.visit_map(serde_spanned::de::SpannedDeserializer::new(self, span));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        match self.0.value {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            // Variants written as tables: `toml` reads them.
            _ => Err(Declined),
        }
    }

    serde::forward_to_deserialize_any! {
        bool u8 u16 u32 u64 u128 i8 i16 i32 i64 i128 f32 f64 char str string seq
        bytes byte_buf map unit ignored_any unit_struct tuple_struct tuple identifier
    }
}

struct Items<'i>(std::vec::IntoIter<Node<'i>>);

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = Declined;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Declined> {
        self.0.next().map(|node| seed.deserialize(NodeDeserializer(node))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<'i> {
    entries: std::vec::IntoIter<(Key<'i>, Node<'i>)>,
    value: Option<Node<'i>>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = Declined;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Declined> {
        let Some((key, node)) = self.entries.next() else { return Ok(None) };
        self.value = Some(node);
        let key: de::value::CowStrDeserializer<'de, Declined> = key.name.into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Declined> {
        let node = self.value.take().ok_or(Declined)?;
        seed.deserialize(NodeDeserializer(node))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}
