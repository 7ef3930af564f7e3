//! The rkyv `with` wrapper for a `String` archived as an rkyv string of an
//! encoded form (format 2: `kana::Kana`, `id::Id`): one definition of the
//! three impls, each wrapper naming its encoder and how it reads back.

/// `coded_string!(Wrapper, ArchivedType, encoded, read_back)`: `encoded(&str,
/// FnOnce(&str) -> R) -> R` hands the archived form to a closure;
/// `read_back(&ArchivedType) -> String` is the owned text.
macro_rules! coded_string {
    ($with:ident, $archived:ident, $encoded:path, $read_back:expr) => {
        impl rkyv::with::ArchiveWith<String> for $with {
            type Archived = $archived;
            type Resolver = rkyv::string::StringResolver;

            fn resolve_with(field: &String, resolver: rkyv::string::StringResolver, out: rkyv::Place<$archived>) {
                rkyv::munge::munge!(let $archived(inner) = out);
                $encoded(field, |e| rkyv::string::ArchivedString::resolve_from_str(e, resolver, inner));
            }
        }

        impl<S: rkyv::rancor::Fallible + ?Sized> rkyv::with::SerializeWith<String, S> for $with
        where
            S::Error: rkyv::rancor::Source,
            str: rkyv::SerializeUnsized<S>,
        {
            fn serialize_with(field: &String, serializer: &mut S) -> Result<rkyv::string::StringResolver, S::Error> {
                $encoded(field, |e| rkyv::string::ArchivedString::serialize_from_str(e, serializer))
            }
        }

        impl<D: rkyv::rancor::Fallible + ?Sized> rkyv::with::DeserializeWith<$archived, String, D> for $with {
            fn deserialize_with(field: &$archived, _: &mut D) -> Result<String, D::Error> {
                let read_back: fn(&$archived) -> String = $read_back;
                Ok(read_back(field))
            }
        }
    };
}

pub(crate) use coded_string;
