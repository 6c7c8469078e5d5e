//! The content-addressed artifact cache (`<cache>/sha256/<hex>`) and downloads into it.
